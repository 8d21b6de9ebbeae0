// The graph of a range query: uPlot lines (or stacked areas), a legend
// with every series' labels and its value under the cursor, a tooltip for
// the series nearest the cursor, and zoom by dragging across the plot.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h, replace } from './dom';
import { formatLabels, formatSI, formatTime, formatValue, parseSample, quote } from './format';

/** A series of a matrix result. */
export interface MatrixSeries {
  metric: Record<string, string>;
  values?: [number, string][];
}

/** Series colours, in order; distinct on white and for the common kinds of colour blindness as far as 20 allow. */
export const palette = [
  '#2563eb', '#ea580c', '#16a34a', '#dc2626', '#9333ea', '#0891b2', '#ca8a04', '#db2777', '#4f46e5', '#65a30d',
  '#0d9488', '#c2410c', '#7c3aed', '#be123c', '#0284c7', '#a16207', '#15803d', '#c026d3', '#475569', '#854d0e',
];

const axisFont = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

/** At most this many series are drawn; more make the graph unreadable and the page slow. */
export const maxSeries = 500;

export class Graph {
  readonly el: HTMLElement;
  /** Called with the time range the user dragged across, in unix seconds. */
  onZoom: (from: number, to: number) => void = () => {};

  private readonly plotEl: HTMLElement;
  private readonly legendEl: HTMLElement;
  private readonly tooltip: HTMLElement;
  private u: uPlot | null = null;
  private xs: number[] = [];
  private raw: (number | null)[][] = []; // each series' own values (not stacked)
  private names: string[] = [];
  private metrics: Record<string, string>[] = [];
  private legendItems: { item: HTMLElement; value: HTMLElement }[] = [];
  private focused = -1;
  private readonly resize: ResizeObserver;

  constructor() {
    this.plotEl = h('div', { class: 'plot' });
    this.tooltip = h('div', { class: 'tooltip', hidden: true });
    this.legendEl = h('div', { class: 'legend' });
    this.el = h('div', { class: 'graph' }, this.plotEl, this.legendEl);
    this.resize = new ResizeObserver(() => {
      if (this.u) this.u.setSize(this.size());
    });
    this.resize.observe(this.plotEl);
  }

  private size(): { width: number; height: number } {
    return { width: Math.max(this.plotEl.clientWidth, 200), height: 380 };
  }

  clear(): void {
    this.u?.destroy();
    this.u = null;
    replace(this.plotEl);
    replace(this.legendEl);
    this.plotEl.removeAttribute('data-series');
  }

  /**
   * Draws the series of a query_range answer over [start, end] at step
   * (seconds). Returns the number of series drawn.
   */
  render(result: MatrixSeries[], start: number, end: number, step: number, stacked: boolean): number {
    this.clear();
    const n = Math.floor((end - start) / step + 1e-9) + 1;
    this.xs = Array.from({ length: n }, (_, i) => start + i * step);
    const shown = result.slice(0, maxSeries);
    this.raw = shown.map((s) => {
      const ys: (number | null)[] = new Array(n).fill(null);
      for (const [t, v] of s.values ?? []) {
        const i = Math.round((t - start) / step);
        const y = parseSample(v);
        if (i >= 0 && i < n && Number.isFinite(y)) ys[i] = y;
      }
      return ys;
    });
    this.metrics = shown.map((s) => s.metric);
    this.names = shown.map((s) => formatLabels(s.metric));

    let data: (number | null)[][] = this.raw;
    const bands: uPlot.Band[] = [];
    if (stacked) {
      const acc = new Array(n).fill(0);
      data = this.raw.map((ys) => ys.map((y, j) => (y === null ? null : (acc[j] += y))));
      for (let i = 2; i <= data.length; i++) bands.push({ series: [i, i - 1] });
    }

    const series: uPlot.Series[] = [
      {},
      ...shown.map((_, i) => {
        const color = palette[i % palette.length];
        return {
          label: this.names[i],
          stroke: color,
          width: 1.5,
          fill: stacked ? color + '55' : undefined,
          spanGaps: false,
          points: { size: 5, fill: color },
        } as uPlot.Series;
      }),
    ];

    const opts: uPlot.Options = {
      ...this.size(),
      series,
      bands,
      legend: { show: false },
      focus: { alpha: 0.25 },
      padding: [12, 28, 0, 0],
      cursor: {
        drag: { x: true, y: false, setScale: false },
        focus: { prox: 24 },
        points: { size: 7, width: 2 },
      },
      scales: { x: { time: true }, y: stacked ? { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.05 : 1] } : {} },
      axes: [
        {
          font: axisFont,
          stroke: '#475569',
          grid: { stroke: '#eef2f7', width: 1 },
          ticks: { stroke: '#cbd5e1', width: 1, size: 5 },
          values: (_u, splits, _ax, _space, incr) => timeTicks(splits, incr),
          size: 44,
        },
        {
          font: axisFont,
          stroke: '#475569',
          grid: { stroke: '#eef2f7', width: 1 },
          ticks: { show: false },
          values: (_u, vals) => vals.map((v) => formatSI(v)),
          size: (_u, values) => (values ? Math.ceil(Math.max(...values.map((v) => v.length)) * 7.2 + 20) : 50),
        },
      ],
      hooks: {
        setCursor: [(u) => this.cursorMoved(u)],
        setSeries: [(_u, idx, opts) => this.seriesFocused(idx, opts as { focus?: boolean })],
        setSelect: [
          (u) => {
            const s = u.select;
            if (s.width < 4) return;
            const from = u.posToVal(s.left, 'x');
            const to = u.posToVal(s.left + s.width, 'x');
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            this.onZoom(from, to);
          },
        ],
      },
    };
    this.u = new uPlot(opts, [this.xs, ...data] as uPlot.AlignedData, this.plotEl);
    this.u.over.appendChild(this.tooltip);
    this.plotEl.setAttribute('data-series', String(shown.length));
    this.renderLegend(result.length);
    return shown.length;
  }

  private renderLegend(total: number): void {
    this.legendItems = this.metrics.map((metric, i) => {
      const color = palette[i % palette.length];
      const value = h('span', { class: 'legend-value' });
      const item = h(
        'div',
        {
          class: 'legend-item',
          'data-color': color,
          title: 'Click to show only this series, Ctrl+click to hide or show it',
          on: {
            click: (ev: MouseEvent) => this.legendClick(i, ev.ctrlKey || ev.metaKey),
            mouseenter: () => this.u?.setSeries(i + 1, { focus: true }),
            mouseleave: () => this.u?.setSeries(null, { focus: false }),
          },
        },
        h('span', { class: 'swatch', style: `background:${color}` }),
        labelsView(metric),
        value,
      );
      return { item, value };
    });
    replace(
      this.legendEl,
      this.legendItems.map((l) => l.item),
      total > this.names.length ? h('div', { class: 'legend-more' }, `${total - this.names.length} more series not drawn (at most ${maxSeries})`) : null,
    );
  }

  private legendClick(i: number, toggle: boolean): void {
    const u = this.u;
    if (!u) return;
    const visible = u.series.slice(1).map((s) => s.show !== false);
    if (toggle) {
      u.setSeries(i + 1, { show: !visible[i] });
    } else {
      const onlyThis = visible.every((v, j) => v === (j === i));
      visible.forEach((_, j) => u.setSeries(j + 1, { show: onlyThis || j === i }));
    }
    this.legendItems.forEach((l, j) => l.item.classList.toggle('off', u.series[j + 1].show === false));
  }

  // uPlot's types say Series; the hook gets the options passed to setSeries.
  private seriesFocused(idx: number | null, opts: { focus?: boolean }): void {
    if (opts.focus === undefined) return;
    this.focused = idx !== null && opts.focus ? idx - 1 : -1;
    this.legendItems.forEach((l, j) => l.item.classList.toggle('focus', j === this.focused));
    if (this.u) this.cursorMoved(this.u);
  }

  private cursorMoved(u: uPlot): void {
    const idx = u.cursor.idx;
    const left = u.cursor.left ?? -1;
    const top = u.cursor.top ?? -1;
    this.legendItems.forEach((l, j) => (l.value.textContent = idx === null || idx === undefined ? '' : formatValue(this.raw[j][idx])));
    if (idx === null || idx === undefined || left < 0) {
      this.tooltip.hidden = true;
      return;
    }
    // The focused series, or the largest values at the cursor.
    let rows = this.raw
      .map((ys, j) => ({ j, v: ys[idx] }))
      .filter((r) => r.v !== null && u.series[r.j + 1].show !== false);
    if (this.focused >= 0) rows = rows.filter((r) => r.j === this.focused);
    rows.sort((a, b) => (b.v as number) - (a.v as number));
    const more = rows.length - 6;
    rows = rows.slice(0, 6);
    if (!rows.length) {
      this.tooltip.hidden = true;
      return;
    }
    replace(
      this.tooltip,
      h('div', { class: 'tooltip-time' }, formatTime(this.xs[idx])),
      rows.map((r) =>
        h(
          'div',
          { class: 'tooltip-row' },
          h('span', { class: 'swatch', style: `background:${palette[r.j % palette.length]}` }),
          h('span', { class: 'tooltip-name' }, this.names[r.j]),
          h('b', null, formatValue(r.v)),
        ),
      ),
      more > 0 ? h('div', { class: 'tooltip-more' }, `${more} more`) : null,
    );
    this.tooltip.hidden = false;
    const ow = u.over.clientWidth;
    const tw = this.tooltip.offsetWidth;
    const th = this.tooltip.offsetHeight;
    const x = left + 16 + tw > ow ? left - tw - 16 : left + 16;
    const y = Math.max(0, Math.min(top + 12, u.over.clientHeight - th));
    this.tooltip.style.transform = `translate(${Math.max(0, x)}px, ${y}px)`;
  }
}

/**
 * Labels of the time axis, in local time and 24-hour clock: the time of
 * day (with seconds when ticks are less than a minute apart), and under it
 * the date where the day changes; only dates when ticks are days apart.
 */
function timeTicks(splits: number[], incr: number): string[] {
  const p = (n: number) => String(n).padStart(2, '0');
  let lastDay = '';
  return splits.map((t) => {
    const d = new Date(t * 1000);
    const day = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
    const newDay = day !== lastDay;
    lastDay = day;
    if (incr >= 86400) return `${p(d.getMonth() + 1)}-${p(d.getDate())}`;
    const time = `${p(d.getHours())}:${p(d.getMinutes())}${incr < 60 ? ':' + p(d.getSeconds()) : ''}`;
    return newDay ? `${time}\n${day}` : time;
  });
}

/** A label set as PromQL writes it, its metric name in bold and label names muted. */
export function labelsView(metric: Record<string, string>): HTMLElement {
  const el = h('span', { class: 'labels' });
  const name = metric.__name__ ?? '';
  const keys = Object.keys(metric)
    .filter((k) => k !== '__name__')
    .sort();
  if (name) el.appendChild(h('span', { class: 'metric-name' }, name));
  if (keys.length || !name) {
    el.appendChild(document.createTextNode('{'));
    keys.forEach((k, i) => {
      if (i) el.appendChild(document.createTextNode(', '));
      el.appendChild(h('span', { class: 'label-name' }, k));
      el.appendChild(document.createTextNode('='));
      el.appendChild(h('span', { class: 'label-value' }, quote(metric[k])));
    });
    el.appendChild(document.createTextNode('}'));
  }
  return el;
}
