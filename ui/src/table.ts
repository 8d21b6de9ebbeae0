// The table of an instant query: one row per series (or the scalar or
// string), with its labels and value(s).
import { h } from './dom';
import { formatTime } from './format';
import { labelsView, type MatrixSeries } from './graph';

export type InstantResult =
  | { resultType: 'vector'; result: { metric: Record<string, string>; value?: [number, string] }[] }
  | { resultType: 'matrix'; result: MatrixSeries[] }
  | { resultType: 'scalar' | 'string'; result: [number, string] };

/** At most this many rows are shown. */
export const maxRows = 2000;

export function renderTable(r: InstantResult): { el: HTMLElement; rows: number } {
  const head = h('thead', null, h('tr', null, h('th', null, 'Series'), h('th', { class: 'num' }, 'Value')));
  const body = h('tbody');
  let rows = 0;
  switch (r.resultType) {
    case 'scalar':
    case 'string':
      body.appendChild(h('tr', null, h('td', { class: 'muted' }, r.resultType), h('td', { class: 'num' }, r.result[1])));
      rows = 1;
      break;
    case 'vector':
      for (const s of r.result.slice(0, maxRows)) {
        body.appendChild(h('tr', null, h('td', null, labelsView(s.metric)), h('td', { class: 'num' }, s.value ? s.value[1] : '(histogram)')));
      }
      rows = r.result.length;
      break;
    case 'matrix':
      for (const s of r.result.slice(0, maxRows)) {
        const vals = (s.values ?? []).map(([t, v]) => h('div', null, v, h('span', { class: 'muted' }, ' @ ', formatTime(t))));
        body.appendChild(h('tr', null, h('td', null, labelsView(s.metric)), h('td', { class: 'num' }, vals)));
      }
      rows = r.result.length;
      break;
  }
  const el = h(
    'div',
    { class: 'table-wrap' },
    h('table', { class: 'data results' }, head, body),
    rows > maxRows ? h('div', { class: 'legend-more' }, `${rows - maxRows} more rows not shown (at most ${maxRows})`) : null,
  );
  return { el, rows };
}
