// The cluster page: the ring (nodes, groups, replicas, leaders) from
// /ring?format=json and the tenants from /status/tenants?format=json.
// Both need the admin scope when auth is on.
import { APIError, describe, getJSON } from './api';
import { h, replace } from './dom';
import { formatInt, formatTime } from './format';
import { node } from './session';

interface RingStatus {
  node_id: string;
  generation: number;
  replication_factor: number;
  groups_per_node: number;
  metadata_leader: string;
  converged: boolean;
  nodes: { id: string; address: string; state: string; replicas: number; leaders: number; preferred_leaders: number; metadata_voter: boolean; last_seen?: string }[];
  groups: {
    id: number;
    ownership: number;
    tokens: number;
    preferred_leader: string;
    leader: string;
    replicas: { node: string; desired: boolean; voter: boolean; state: string; applied_index: number; lag: number }[];
  }[];
  epochs: { generation: number; from: string; groups: number }[];
  errors?: string[];
}

interface TenantStatus {
  tenant: string;
  series: number;
  samples: number;
  samples_per_second: number;
}

const refreshMs = 10_000;

export class ClusterPage {
  readonly el = h('section', { class: 'page' });
  private readonly body = h('div');
  private timer = 0;
  private abort: AbortController | null = null;
  private updated = h('span', { class: 'muted' });

  /** Loads now and every 10 s until stop. */
  start(): void {
    this.stop();
    replace(
      this.el,
      h(
        'div',
        { class: 'page-head' },
        h('div', null, h('h1', null, 'Cluster'), h('p', { class: 'muted' }, 'The ring as the metadata leader sees it, through node ', h('b', null, node.node_id || 'this node'), '. ', this.updated)),
        h(
          'div',
          { class: 'page-actions' },
          // A link cannot carry the token: the HTML page is for nodes without auth.
          node.auth ? null : h('a', { class: 'button', href: '/ring', target: '_blank' }, 'Ring page'),
          h('button', { on: { click: () => this.load() } }, 'Refresh'),
        ),
      ),
      this.body,
    );
    replace(this.body, h('div', { class: 'status-line' }, h('span', { class: 'spinner' }), 'Loading…'));
    this.load();
    this.timer = window.setInterval(() => {
      if (document.visibilityState === 'visible') this.load();
    }, refreshMs);
  }

  stop(): void {
    window.clearInterval(this.timer);
    this.abort?.abort();
  }

  async load(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    try {
      const [ring, tenants] = await Promise.all([
        getJSON<RingStatus>('/ring?format=json', abort.signal),
        getJSON<TenantStatus[]>('/status/tenants?format=json', abort.signal).catch(() => null),
      ]);
      this.render(ring, tenants);
      this.updated.textContent = `Updated ${formatTime(Date.now() / 1000)}.`;
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      const denied = e instanceof APIError && (e.status === 401 || e.status === 403);
      replace(
        this.body,
        h(
          'div',
          { class: 'message ' + (denied ? 'warning' : 'error'), role: 'alert' },
          denied
            ? [h('b', null, 'Admin only.'), ' The ring names every node and tenant, so it needs a token with the ', h('code', null, 'admin'), ' scope. Sign in with one (top right).']
            : [h('b', null, 'Error'), ' ', describe(e)],
        ),
      );
    }
  }

  private render(r: RingStatus, tenants: TenantStatus[] | null): void {
    const badge = (ok: boolean, yes: string, no: string) => h('span', { class: 'badge ' + (ok ? 'ok' : 'bad') }, ok ? yes : no);
    const card = (label: string, value: HTMLElement | string) => h('div', { class: 'card' }, h('div', { class: 'card-label' }, label), h('div', { class: 'card-value' }, value));
    const age = (t?: string) => {
      if (!t) return 'never';
      const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
      return s < 1 ? 'just now' : `${Math.round(s)} s ago`;
    };
    replace(
      this.body,
      h(
        'div',
        { class: 'cards' },
        card('Health', badge(r.converged, 'converged', 'converging')),
        card('Nodes', String(r.nodes.length)),
        card('Groups', String(r.groups.length)),
        card('Replication factor', String(r.replication_factor)),
        card('Metadata leader', r.metadata_leader || badge(false, '', 'none')),
        card('Generation', String(r.generation)),
      ),
      r.errors?.length ? h('div', { class: 'message warning' }, h('b', null, 'Not heard from'), h('ul', null, r.errors.map((e) => h('li', null, e)))) : null,
      h(
        'div',
        { class: 'panel' },
        h('h2', null, 'Nodes'),
        h(
          'table',
          { class: 'data' },
          h('thead', null, h('tr', null, ['Node', 'Address', 'State', 'Replicas', 'Leaders', 'Preferred leaders', 'Metadata voter', 'Last seen'].map((c, i) => h('th', { class: i >= 3 && i <= 5 ? 'num' : '' }, c)))),
          h(
            'tbody',
            null,
            r.nodes.map((n) =>
              h(
                'tr',
                { class: n.state === 'active' ? '' : 'warn' },
                h('td', { class: 'mono' }, n.id, n.id === r.node_id ? h('span', { class: 'muted' }, ' (this node)') : null),
                h('td', { class: 'mono' }, n.address),
                h('td', null, badge(n.state === 'active', n.state, n.state)),
                h('td', { class: 'num' }, String(n.replicas)),
                h('td', { class: 'num' }, String(n.leaders)),
                h('td', { class: 'num' }, String(n.preferred_leaders)),
                h('td', null, n.metadata_voter ? 'yes' : 'no'),
                h('td', null, age(n.last_seen)),
              ),
            ),
          ),
        ),
      ),
      h(
        'div',
        { class: 'panel' },
        h('h2', null, 'Groups'),
        h(
          'table',
          { class: 'data' },
          h('thead', null, h('tr', null, h('th', { class: 'num' }, 'Group'), h('th', { class: 'num' }, 'Ownership'), h('th', null, 'Leader'), h('th', null, 'Replicas'))),
          h(
            'tbody',
            null,
            r.groups.map((g) => {
              const problem = !g.leader || g.replicas.some((x) => !x.state || x.lag > 0 || !x.desired || !x.voter);
              return h(
                'tr',
                { class: problem ? 'warn' : '' },
                h('td', { class: 'num' }, String(g.id)),
                h('td', { class: 'num' }, `${(g.ownership * 100).toFixed(1)}%`),
                h('td', { class: 'mono' }, g.leader || badge(false, '', 'no leader'), g.leader && g.leader !== g.preferred_leader ? h('span', { class: 'muted' }, ` (preferred ${g.preferred_leader})`) : null),
                h(
                  'td',
                  null,
                  g.replicas.map((x) => {
                    const bad = !x.state || x.lag > 0 || !x.desired || !x.voter;
                    const notes = [x.state || 'unreachable', x.voter ? '' : 'non-voter', x.desired ? '' : 'not desired', x.lag ? `lag ${x.lag}` : ''].filter(Boolean);
                    return h('span', { class: 'chip' + (bad ? ' bad' : '') + (x.state === 'Leader' ? ' leader' : ''), title: `applied index ${x.applied_index}` }, x.node, h('span', { class: 'chip-note' }, notes.join(', ')));
                  }),
                ),
              );
            }),
          ),
        ),
      ),
      tenants
        ? h(
            'div',
            { class: 'panel' },
            h('h2', null, 'Tenants'),
            h(
              'table',
              { class: 'data' },
              h('thead', null, h('tr', null, h('th', null, 'Tenant'), h('th', { class: 'num' }, 'Head series'), h('th', { class: 'num' }, 'Samples accepted'), h('th', { class: 'num' }, 'Samples/s'))),
              h(
                'tbody',
                null,
                tenants.length
                  ? tenants.map((t) =>
                      h('tr', null, h('td', { class: 'mono' }, t.tenant), h('td', { class: 'num' }, formatInt(t.series)), h('td', { class: 'num' }, formatInt(t.samples)), h('td', { class: 'num' }, t.samples_per_second.toFixed(1))),
                    )
                  : h('tr', null, h('td', { class: 'muted', colspan: 4 }, 'No tenants yet')),
              ),
            ),
          )
        : null,
    );
  }
}
