// The node page: what the landing page said before the UI (version, node,
// readiness, links to the status pages and the APIs), and the session.
import { getText } from './api';
import { h, replace } from './dom';
import { node, session } from './session';

export class NodePage {
  readonly el = h('section', { class: 'page' });

  async show(): Promise<void> {
    const ready = h('span', { class: 'badge' }, node.ready ? 'ready' : 'not ready');
    ready.classList.add(node.ready ? 'ok' : 'bad');
    const base = `${location.protocol}//${location.host}`;
    const who = session.who;
    const link = (path: string, what: string, json?: string) =>
      h('li', null, h('a', { href: path }, path), json ? [' (', h('a', { href: json }, 'JSON'), ')'] : null, ' — ', what);
    replace(
      this.el,
      h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Node'), h('p', { class: 'muted' }, 'This node and where to find the rest.'))),
      h(
        'div',
        { class: 'cards' },
        card('Node', h('span', { class: 'mono' }, node.node_id || '–')),
        card('Version', h('span', { class: 'mono' }, node.version || '–')),
        card('Readiness', ready),
        card('Auth', node.auth ? 'tokens' : 'off'),
        card('Tenants', node.multitenant ? 'X-Scope-OrgID' : 'one (anonymous)'),
      ),
      node.auth
        ? h(
            'div',
            { class: 'panel' },
            h('h2', null, 'Your token'),
            who
              ? h(
                  'dl',
                  { class: 'facts' },
                  h('dt', null, 'Name'),
                  h('dd', { class: 'mono' }, who.name ?? ''),
                  h('dt', null, 'Tenants'),
                  h('dd', { class: 'mono' }, (who.tenants ?? []).join(', ') || 'none'),
                  h('dt', null, 'Scopes'),
                  h('dd', { class: 'mono' }, (who.scopes ?? []).join(', ')),
                )
              : h('p', { class: 'muted' }, 'Not signed in. Sign in with a token (top right) to query its tenants.'),
          )
        : null,
      h(
        'div',
        { class: 'grid2' },
        h(
          'div',
          { class: 'panel' },
          h('h2', null, 'Status'),
          h(
            'ul',
            { class: 'links' },
            link('/ring', 'nodes, groups, replicas and leaders of the cluster', '/ring?format=json'),
            link('/status/tenants', 'series and samples per tenant', '/status/tenants?format=json'),
            link('/ready', '200 when this node serves reads and writes'),
            link('/metrics', "this node's own metrics, Prometheus text format"),
            link('/config', 'the effective flag values'),
            link('/admin/raft/status', "this node's Raft replicas"),
            link('/debug/pprof/', 'Go profiles'),
          ),
          node.auth ? h('p', { class: 'muted small' }, 'With auth on these need a token with the admin scope (/metrics: metrics or admin); a browser cannot send it by following a link, so use curl with -H "Authorization: Bearer …".') : null,
        ),
        h(
          'div',
          { class: 'panel' },
          h('h2', null, 'APIs'),
          h(
            'ul',
            { class: 'links' },
            h('li', null, 'Remote write 1.0: ', h('code', null, `POST ${base}/api/v1/push`), ' (also ', h('code', null, '/api/v1/write'), ')'),
            h('li', null, 'Prometheus query API: ', h('code', null, `${base}/prometheus/api/v1/query`), ', ', h('code', null, 'query_range'), ', ', h('code', null, 'series'), ', ', h('code', null, 'labels'), ', …'),
            h(
              'li',
              null,
              'Grafana: a Prometheus data source with the URL ',
              h('code', null, `${base}/prometheus`),
              node.auth ? [' and the header ', h('code', null, 'Authorization: Bearer <token>')] : node.multitenant ? [' and the header ', h('code', null, 'X-Scope-OrgID: <tenant>')] : null,
            ),
          ),
        ),
      ),
    );
    const r = await getText('/ready');
    ready.textContent = r.ok ? 'ready' : `not ready: ${r.text.replace(/^not ready: /, '')}`;
    ready.className = 'badge ' + (r.ok ? 'ok' : 'bad');
  }
}

function card(label: string, value: HTMLElement | string): HTMLElement {
  return h('div', { class: 'card' }, h('div', { class: 'card-label' }, label), h('div', { class: 'card-value' }, value));
}
