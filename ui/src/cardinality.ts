// The cardinality page: the tenant's top metrics and labels by series,
// from /api/v1/status/tsdb (Prometheus's shape, served per tenant).
import { call, describe } from './api';
import { h, replace } from './dom';
import { formatBytes, formatInt, formatTime } from './format';
import { session } from './session';

interface Stat {
  name: string;
  value: number;
}

interface TSDBStatus {
  headStats: { numSeries: number; numLabelPairs: number; chunkCount: number; minTime: number; maxTime: number };
  seriesCountByMetricName: Stat[] | null;
  labelValueCountByLabelName: Stat[] | null;
  memoryInBytesByLabelName: Stat[] | null;
  seriesCountByLabelValuePair: Stat[] | null;
}

export class CardinalityPage {
  readonly el: HTMLElement;
  private readonly body = h('div', { class: 'cardinality' });
  private readonly notes = h('div', { class: 'messages' });
  private limit = 10;
  private abort: AbortController | null = null;

  constructor(private readonly openQuery: (expr: string) => void) {
    this.el = h('section', { class: 'page' });
  }

  private header(): HTMLElement {
    const limit = h(
      'select',
      { title: 'Rows per table', on: { change: (ev: Event) => ((this.limit = Number((ev.target as HTMLSelectElement).value)), this.load()) } },
      [10, 20, 50, 100].map((n) => h('option', { value: String(n), selected: n === this.limit }, `Top ${n}`)),
    );
    return h(
      'div',
      { class: 'page-head' },
      h('div', null, h('h1', null, 'Cardinality'), h('p', { class: 'muted' }, 'Series of ', h('b', null, session.displayTenant() || 'no tenant'), ' with samples in the last hour, by metric and label.')),
      h('div', { class: 'page-actions' }, limit, h('button', { on: { click: () => this.load() } }, 'Refresh')),
    );
  }

  async load(): Promise<void> {
    replace(this.el, this.header(), this.notes, this.body);
    replace(this.notes);
    const why = session.cannotQuery();
    if (why) {
      replace(this.body, h('div', { class: 'message warning' }, why));
      return;
    }
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    replace(this.body, h('div', { class: 'status-line' }, h('span', { class: 'spinner' }), 'Counting series…'));
    try {
      const r = await call<TSDBStatus>('/api/v1/status/tsdb', { limit: String(this.limit) }, { signal: abort.signal });
      for (const w of r.warnings) this.notes.appendChild(h('div', { class: 'message warning' }, h('b', null, 'Warning'), ' ', w));
      this.render(r.data);
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      replace(this.body, h('div', { class: 'message error', role: 'alert' }, h('b', null, 'Error'), ' ', describe(e)));
    }
  }

  private render(s: TSDBStatus): void {
    const hs = s.headStats;
    const window = `${formatTime(hs.minTime / 1000, false)} – ${formatTime(hs.maxTime / 1000, false)}`;
    const card = (label: string, value: string, title = '') => h('div', { class: 'card', title }, h('div', { class: 'card-label' }, label), h('div', { class: 'card-value' }, value));
    const metricLink = (name: string) =>
      h('a', { href: '#', title: 'Show this metric\'s series', on: { click: (ev: MouseEvent) => (ev.preventDefault(), this.openQuery(name)) } }, name);
    replace(
      this.body,
      h('div', { class: 'cards' }, card('Series', formatInt(hs.numSeries)), card('Label pairs', formatInt(hs.numLabelPairs)), card('Window', 'last hour', window)),
      h(
        'div',
        { class: 'grid2' },
        statTable('Metrics by series', 'Metric', 'Series', s.seriesCountByMetricName, hs.numSeries, formatInt, metricLink),
        statTable('Label names by distinct values', 'Label', 'Values', s.labelValueCountByLabelName, 0, formatInt),
        statTable('Label pairs by series', 'Label pair', 'Series', s.seriesCountByLabelValuePair, hs.numSeries, formatInt),
        statTable('Label names by bytes of values', 'Label', 'Bytes', s.memoryInBytesByLabelName, 0, formatBytes),
      ),
    );
  }
}

/** A table of stats with a bar per row: share of total, or of the largest row when total is 0. */
function statTable(title: string, nameCol: string, valueCol: string, rows: Stat[] | null, total: number, fmt: (n: number) => string, link?: (name: string) => HTMLElement): HTMLElement {
  rows = rows ?? [];
  const max = total || Math.max(1, ...rows.map((r) => r.value));
  return h(
    'div',
    { class: 'panel' },
    h('h2', null, title),
    h(
      'table',
      { class: 'data stat-table' },
      h('thead', null, h('tr', null, h('th', null, nameCol), h('th', { class: 'num' }, valueCol), h('th', { class: 'bar-col' }, total ? 'Share' : ''))),
      h(
        'tbody',
        null,
        rows.length
          ? rows.map((r) =>
              h(
                'tr',
                null,
                h('td', { class: 'mono' }, link ? link(r.name) : r.name),
                h('td', { class: 'num' }, fmt(r.value)),
                h('td', { class: 'bar-col' }, h('div', { class: 'bar', title: total ? `${((100 * r.value) / total).toFixed(1)}%` : '' }, h('div', { style: `width:${Math.min(100, (100 * r.value) / max).toFixed(1)}%` }))),
              ),
            )
          : h('tr', null, h('td', { class: 'muted', colspan: 3 }, 'No series')),
      ),
    ),
  );
}
