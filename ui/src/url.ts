// The page's state in the URL's fragment, so that a link shows what its
// sender saw: #/query?expr=up&tab=graph&range=1h&end=1700000000&step=15&mode=stacked&tenant=a
//
// The fragment never reaches the server (no query string to log, and the
// index stays one cacheable document).
import { formatDuration, parseDuration } from './format';

export type Page = 'query' | 'cardinality' | 'cluster' | 'node';
export const pages: Page[] = ['query', 'cardinality', 'cluster', 'node'];

export interface QueryState {
  expr: string;
  tab: 'graph' | 'table';
  range: number; // seconds
  end: number | null; // unix seconds; null: now
  step: number | null; // seconds; null: chosen from the range
  stacked: boolean;
}

export interface Route {
  page: Page;
  query: QueryState;
  tenant: string | null; // null: not in the URL
}

export const defaultRange = 3600;

export function defaultQuery(): QueryState {
  return { expr: '', tab: 'graph', range: defaultRange, end: null, step: null, stacked: false };
}

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  const [path, qs = ''] = h.split('?', 2);
  const page = (pages as string[]).includes(path) ? (path as Page) : 'query';
  const p = new URLSearchParams(qs);
  const q = defaultQuery();
  q.expr = p.get('expr') ?? '';
  q.tab = p.get('tab') === 'table' ? 'table' : 'graph';
  q.range = parseDuration(p.get('range') ?? '') ?? defaultRange;
  const end = Number(p.get('end'));
  q.end = p.get('end') && Number.isFinite(end) && end > 0 ? end : null;
  q.step = parseDuration(p.get('step') ?? '');
  q.stacked = p.get('mode') === 'stacked';
  return { page, query: q, tenant: p.get('tenant') };
}

export function formatRoute(r: Route): string {
  const p = new URLSearchParams();
  if (r.page === 'query') {
    const q = r.query;
    if (q.expr) p.set('expr', q.expr);
    p.set('tab', q.tab);
    p.set('range', formatDuration(q.range));
    if (q.end !== null) p.set('end', String(Math.round(q.end * 1000) / 1000));
    if (q.step !== null) p.set('step', formatDuration(q.step));
    if (q.stacked) p.set('mode', 'stacked');
  }
  if (r.tenant) p.set('tenant', r.tenant);
  const qs = p.toString();
  return `#/${r.page}${qs ? '?' + qs : ''}`;
}
