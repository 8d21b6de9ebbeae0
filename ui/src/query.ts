// The query page: the editor, the graph and table tabs with their time
// controls, the query's statistics and its errors.
import { call, describe } from './api';
import { h, icon, icons, replace } from './dom';
import { createEditor, type Editor } from './editor';
import { formatDuration, formatInt, formatTime, parseDuration, parseTime } from './format';
import { Graph, type MatrixSeries } from './graph';
import { session } from './session';
import { renderTable, type InstantResult } from './table';
import type { QueryState } from './url';

/** The stats of a query with stats=true (Prometheus's, plus the series the querier returned). */
interface QueryStats {
  timings?: { evalTotalTime?: number; execTotalTime?: number; execQueueTime?: number };
  samples?: { totalQueryableSamples?: number; samplesRead?: number; peakSamples?: number };
  seriesFetched?: number;
}

const rangeSteps = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400, 56 * 86400];

/** The step for a range when none is set: about 250 points, as Prometheus's UI chooses. */
export function autoStep(range: number): number {
  return Math.max(Math.floor(range / 250), 1);
}

export class QueryPage {
  readonly el: HTMLElement;
  private readonly editor: Editor;
  private state: QueryState;
  private readonly graph = new Graph();
  private readonly output = h('div', { class: 'output' });
  private readonly status = h('div', { class: 'status-line' });
  private readonly messages = h('div', { class: 'messages' });
  private readonly controls = h('div', { class: 'controls' });
  private readonly runButton: HTMLButtonElement;
  private abort: AbortController | null = null;

  /** onState: the state changed by the user (push: a new history entry). */
  constructor(
    initial: QueryState,
    private readonly onState: (q: QueryState, push: boolean) => void,
  ) {
    this.state = { ...initial };
    const editorEl = h('div', { class: 'editor' });
    this.editor = createEditor(editorEl, initial.expr, () => this.submit());
    this.runButton = h('button', { class: 'primary run', title: 'Run the query (Enter)', on: { click: () => this.submit() } }, icon(icons.play), 'Run');
    this.graph.onZoom = (from, to) => {
      // Whole seconds: a range of 17m59.676s helps nobody, in the URL or the field.
      this.state = { ...this.state, end: Math.round(to), range: Math.max(Math.round(to - from), 1), step: null };
      this.onState(this.state, true);
      this.renderControls();
      this.run();
    };
    this.el = h(
      'section',
      { class: 'page query-page' },
      h('div', { class: 'query-bar' }, editorEl, this.runButton),
      this.controls,
      this.messages,
      this.status,
      this.output,
    );
    this.renderControls();
  }

  /** Shows a state from the URL; runs it if it has an expression. */
  show(q: QueryState): void {
    this.state = { ...q };
    this.editor.set(q.expr);
    this.renderControls();
    if (q.expr) this.run();
    else this.clearOutput();
  }

  focus(): void {
    this.editor.focus();
  }

  /** The user ran the query: a new history entry, then the query. */
  private submit(): void {
    this.state = { ...this.state, expr: this.editor.value().trim() };
    this.onState(this.state, true);
    this.run();
  }

  /** A control changed the state: the URL follows (no new history entry) and the query runs again. */
  private change(patch: Partial<QueryState>): void {
    this.state = { ...this.state, ...patch, expr: this.editor.value().trim() };
    this.onState(this.state, false);
    this.renderControls();
    if (this.state.expr) this.run();
  }

  private renderControls(): void {
    const q = this.state;
    const seg = (options: [string, string][], value: string, pick: (v: string) => void, cls = '') =>
      h(
        'div',
        { class: 'segmented ' + cls, role: 'tablist' },
        options.map(([v, label]) =>
          h('button', { class: v === value ? 'active' : '', role: 'tab', 'aria-selected': String(v === value), 'data-value': v, on: { click: () => v !== value && pick(v) } }, label),
        ),
      );
    const tabs = seg(
      [
        ['graph', 'Graph'],
        ['table', 'Table'],
      ],
      q.tab,
      (v) => this.change({ tab: v as QueryState['tab'] }),
      'tabs',
    );

    const rangeInput = h('input', {
      class: 'range-input',
      value: formatDuration(q.range),
      title: 'Range, e.g. 30m, 6h, 2d',
      size: 6,
      on: {
        change: (ev: Event) => {
          const v = parseDuration((ev.target as HTMLInputElement).value);
          if (v) this.change({ range: v });
          else (ev.target as HTMLInputElement).value = formatDuration(this.state.range);
        },
      },
    });
    const stepRange = (dir: number) => {
      const next = dir < 0 ? ([...rangeSteps].reverse().find((r) => r < q.range) ?? rangeSteps[0]) : (rangeSteps.find((r) => r > q.range) ?? rangeSteps[rangeSteps.length - 1]);
      this.change({ range: next });
    };
    // A new element per use: the graph's and the table's controls each hold one.
    const endInput = () => h('input', {
      class: 'end-input',
      value: q.end === null ? '' : formatTime(q.end),
      placeholder: 'now',
      title: 'End of the range: YYYY-MM-DD HH:MM[:SS] in local time, or empty for now',
      spellcheck: 'false',
      on: {
        change: (ev: Event) => {
          const el = ev.target as HTMLInputElement;
          const t = el.value.trim() ? parseTime(el.value) : null;
          if (t === null && el.value.trim()) el.value = this.state.end === null ? '' : formatTime(this.state.end);
          else this.change({ end: t });
        },
      },
    });
    const shiftEnd = (dir: number) => {
      const end = (q.end ?? Date.now() / 1000) + (dir * q.range) / 2;
      this.change({ end: end >= Date.now() / 1000 ? null : end });
    };
    const stepInput = h('input', {
      class: 'step-input',
      value: q.step === null ? '' : formatDuration(q.step),
      placeholder: `auto (${formatDuration(autoStep(q.range))})`,
      title: 'Resolution: the step between points (empty: chosen from the range)',
      size: 9,
      on: {
        change: (ev: Event) => {
          const raw = (ev.target as HTMLInputElement).value.trim();
          this.change({ step: raw ? parseDuration(raw) : null });
        },
      },
    });

    const graphControls = [
      h('div', { class: 'control-group', title: 'Range' }, h('button', { class: 'icon-button', title: 'Shorter range', on: { click: () => stepRange(-1) } }, icon(icons.minus)), rangeInput, h('button', { class: 'icon-button', title: 'Longer range', on: { click: () => stepRange(1) } }, icon(icons.plus))),
      h(
        'div',
        { class: 'control-group' },
        h('button', { class: 'icon-button', title: 'Earlier', on: { click: () => shiftEnd(-1) } }, '‹'),
        endInput(),
        h('button', { class: 'icon-button', title: 'Later', on: { click: () => shiftEnd(1) } }, '›'),
        q.end !== null ? h('button', { class: 'link-button', title: 'End now', on: { click: () => this.change({ end: null }) } }, 'now') : null,
      ),
      h('label', { class: 'control-group labelled' }, h('span', null, 'Step'), stepInput),
      seg(
        [
          ['lines', 'Lines'],
          ['stacked', 'Stacked'],
        ],
        q.stacked ? 'stacked' : 'lines',
        (v) => this.change({ stacked: v === 'stacked' }),
        'mode',
      ),
    ];
    const tableControls = [
      h('label', { class: 'control-group labelled' }, h('span', null, 'At'), endInput()),
      q.end !== null ? h('button', { class: 'link-button', on: { click: () => this.change({ end: null }) } }, 'now') : null,
    ];
    const share = h(
      'button',
      {
        class: 'ghost share',
        title: 'Copy a link to this query',
        on: {
          click: async () => {
            try {
              await navigator.clipboard.writeText(location.href);
              share.lastChild!.textContent = 'Copied';
            } catch {
              share.lastChild!.textContent = 'Copy the address bar';
            }
            setTimeout(() => (share.lastChild!.textContent = 'Link'), 1500);
          },
        },
      },
      icon(icons.share),
      h('span', null, 'Link'),
    );
    replace(this.controls, tabs, h('div', { class: 'control-row' }, q.tab === 'graph' ? graphControls : tableControls), h('div', { class: 'spacer' }), share);
  }

  private clearOutput(): void {
    this.graph.clear();
    replace(this.output);
    replace(this.status);
    replace(this.messages);
  }

  private message(kind: 'error' | 'warning' | 'info', text: string): void {
    this.messages.appendChild(h('div', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, h('b', null, kind === 'error' ? 'Error' : kind === 'warning' ? 'Warning' : 'Note'), ' ', text));
  }

  /** Runs the current state's query and shows its result. */
  async run(): Promise<void> {
    const q = this.state;
    if (!q.expr) return;
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    replace(this.messages);
    const why = session.cannotQuery();
    if (why) {
      this.clearOutput();
      this.message('warning', why);
      return;
    }
    this.el.classList.add('loading');
    this.runButton.disabled = true;
    replace(this.status, h('span', { class: 'spinner' }), 'Running…');
    const t0 = performance.now();
    try {
      if (q.tab === 'graph') await this.runRange(q, abort.signal, t0);
      else await this.runInstant(q, abort.signal, t0);
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      this.clearOutput();
      this.message('error', describe(e));
    } finally {
      if (this.abort === abort) {
        this.el.classList.remove('loading');
        this.runButton.disabled = false;
      }
    }
  }

  private async runRange(q: QueryState, signal: AbortSignal, t0: number): Promise<void> {
    const step = q.step ?? autoStep(q.range);
    // "now" is aligned to the step, so that refreshing keeps the points
    // on the same times.
    const end = q.end ?? Math.floor(Date.now() / 1000 / step) * step;
    const start = end - q.range;
    const r = await call<{ resultType: string; result: MatrixSeries[]; stats?: QueryStats }>(
      '/api/v1/query_range',
      { query: q.expr, start: String(start), end: String(end), step: String(step), stats: 'true' },
      { method: 'POST', signal },
    );
    const ms = performance.now() - t0;
    this.showNotes(r.warnings, r.infos);
    const result = r.data.result ?? [];
    replace(this.output, this.graph.el);
    if (!result.length) {
      this.graph.clear();
      replace(this.output, h('div', { class: 'empty' }, 'No data in this range. ', h('span', { class: 'muted' }, `${formatTime(start, false)} – ${formatTime(end, false)}`)));
    } else {
      this.graph.render(result, start, end, step, q.stacked);
    }
    this.showStats(result.length, r.data.stats, ms, `step ${formatDuration(step)}`);
  }

  private async runInstant(q: QueryState, signal: AbortSignal, t0: number): Promise<void> {
    const params: Record<string, string> = { query: q.expr, stats: 'true' };
    if (q.end !== null) params.time = String(q.end);
    const r = await call<InstantResult & { stats?: QueryStats }>('/api/v1/query', params, { method: 'POST', signal });
    const ms = performance.now() - t0;
    this.showNotes(r.warnings, r.infos);
    this.graph.clear();
    const { el, rows } = renderTable(r.data);
    replace(this.output, rows ? el : h('div', { class: 'empty' }, 'Empty result.'));
    this.showStats(rows, r.data.stats, ms, q.end === null ? 'at now' : `at ${formatTime(q.end)}`);
  }

  private showNotes(warnings: string[], infos: string[]): void {
    for (const w of warnings) this.message('warning', w);
    for (const i of infos) this.message('info', i);
  }

  private showStats(series: number, st: QueryStats | undefined, ms: number, extra: string): void {
    const item = (label: string, value: string, title = '') => h('span', { class: 'stat', title }, h('span', { class: 'stat-label' }, label), ' ', h('b', null, value));
    const s = st?.samples;
    replace(
      this.status,
      item('Result series', formatInt(series), 'Series in the result'),
      st?.seriesFetched !== undefined ? item('Series fetched', formatInt(st.seriesFetched), 'Series the query read from storage') : null,
      s?.samplesRead !== undefined ? item('Samples read', formatInt(s.samplesRead), 'Samples read from storage (Prometheus stats: samplesRead)') : null,
      s?.peakSamples !== undefined ? item('Peak samples', formatInt(s.peakSamples), 'Samples held in memory at once at the peak') : null,
      st?.timings?.evalTotalTime !== undefined ? item('Evaluation', fmtMs(st.timings.evalTotalTime * 1000), 'Time the node spent evaluating the query') : null,
      item('Round trip', fmtMs(ms), 'Time from the request to the parsed answer, as this browser saw it'),
      h('span', { class: 'stat muted' }, extra),
    );
  }
}

function fmtMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : ms < 10000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
