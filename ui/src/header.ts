// The header: the pages, the tenant picker, signing in with a token, and
// the node's readiness.
import { APIError, getJSON, getText, nodeFetch } from './api';
import { h, icon, icons, replace } from './dom';
import { node, session, type WhoAmI } from './session';
import type { Page } from './url';

const pageNames: [Page, string][] = [
  ['query', 'Query'],
  ['cardinality', 'Cardinality'],
  ['cluster', 'Cluster'],
  ['node', 'Node'],
];

/** Asks the node who a token is; null if it refuses the token. */
export async function whoami(token: string): Promise<WhoAmI> {
  const resp = await nodeFetch('/api/v1/auth/whoami', { headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' } });
  const text = await resp.text();
  let j: { status?: string; data?: WhoAmI; error?: string } = {};
  try {
    j = JSON.parse(text);
  } catch {
    // plain-text refusal
  }
  if (!resp.ok || j.status !== 'success' || !j.data) {
    throw new APIError(resp.status, '', j.error ?? (text.trim() || `HTTP ${resp.status}`));
  }
  return j.data;
}

export class Header {
  readonly el: HTMLElement;
  private readonly nav = h('nav', { class: 'nav' });
  private readonly tenantEl = h('div', { class: 'tenant' });
  private readonly readyEl = h('span', { class: 'node-state', title: '' });
  private readonly dialog: HTMLDialogElement;
  private knownTenants: string[] = [];
  private page: Page = 'query';

  constructor(private readonly go: (p: Page) => void) {
    this.dialog = this.signInDialog();
    this.el = h(
      'header',
      { class: 'top' },
      h(
        'a',
        { class: 'brand', href: '#/query', title: 'Myelin' },
        h('span', { class: 'logo' }, brandMark()),
        h('span', { class: 'brand-name' }, 'Myelin'),
      ),
      this.nav,
      h('div', { class: 'spacer' }),
      this.tenantEl,
      this.readyEl,
      this.dialog,
    );
    session.onChange(() => this.renderTenant());
    this.renderNav();
    this.renderTenant();
    this.setReady(node.ready, node.not_ready ?? '');
    window.setInterval(() => this.pollReady(), 15_000);
    if (!node.auth && node.multitenant) this.loadTenants();
  }

  setPage(p: Page): void {
    this.page = p;
    this.renderNav();
  }

  private renderNav(): void {
    replace(
      this.nav,
      pageNames.map(([p, name]) =>
        h('a', { href: `#/${p}`, class: p === this.page ? 'active' : '', 'data-page': p, on: { click: (ev: MouseEvent) => (ev.preventDefault(), this.go(p)) } }, name),
      ),
    );
  }

  private async pollReady(): Promise<void> {
    if (document.visibilityState !== 'visible') return;
    const r = await getText('/ready');
    this.setReady(r.ok, r.text);
  }

  private setReady(ok: boolean, why: string): void {
    replace(this.readyEl, h('span', { class: 'dot ' + (ok ? 'ok' : 'bad') }), h('span', { class: 'mono' }, node.node_id || 'node'));
    this.readyEl.title = `${node.node_id} ${node.version}: ${ok ? 'ready' : why || 'not ready'}`;
  }

  /** With auth off, the tenants the node knows, as suggestions (the tenant page is open then). */
  private async loadTenants(): Promise<void> {
    try {
      const ts = await getJSON<{ tenant: string }[]>('/status/tenants?format=json');
      this.knownTenants = ts.map((t) => t.tenant);
      this.renderTenant();
    } catch {
      // suggestions only
    }
  }

  renderTenant(): void {
    if (!node.multitenant) {
      replace(this.tenantEl, h('span', { class: 'tenant-label' }, 'Tenant'), h('span', { class: 'chip' }, 'anonymous'));
      return;
    }
    if (!node.auth) {
      const list = h('datalist', { id: 'tenant-list' }, this.knownTenants.map((t) => h('option', { value: t })));
      const input = h('input', {
        class: 'tenant-input',
        list: 'tenant-list',
        value: session.tenant,
        placeholder: 'tenant (X-Scope-OrgID)',
        spellcheck: 'false',
        'aria-label': 'Tenant',
        on: {
          change: (ev: Event) => session.setTenant((ev.target as HTMLInputElement).value),
          keydown: (ev: KeyboardEvent) => ev.key === 'Enter' && (ev.target as HTMLInputElement).blur(),
        },
      });
      replace(this.tenantEl, h('span', { class: 'tenant-label' }, 'Tenant'), input, list);
      return;
    }
    const who = session.who;
    if (!session.token || !who) {
      replace(this.tenantEl, h('button', { class: 'primary small', on: { click: () => this.openSignIn() } }, icon(icons.key), 'Sign in'));
      return;
    }
    const tenants = who.tenants ?? [];
    const chosen = new Set(session.tenantsOf(session.tenant || (tenants.length === 1 ? tenants[0] : '')));
    let picker: HTMLElement;
    if (tenants.length > 1) {
      const menu = h(
        'div',
        { class: 'menu', hidden: true },
        h('div', { class: 'menu-title' }, 'Tenants of this token'),
        tenants.map((t) =>
          h(
            'label',
            { class: 'menu-item' },
            h('input', {
              type: 'checkbox',
              checked: chosen.has(t),
              on: {
                change: (ev: Event) => {
                  if ((ev.target as HTMLInputElement).checked) chosen.add(t);
                  else chosen.delete(t);
                },
              },
            }),
            h('span', { class: 'mono' }, t),
          ),
        ),
        h('div', { class: 'menu-note' }, 'Several tenants are read together, with a __tenant_id__ label.'),
        h('div', { class: 'menu-actions' }, h('button', { class: 'primary small', on: { click: () => (session.setTenant([...chosen].join('|')), (menu.hidden = true)) } }, 'Apply')),
      );
      picker = h(
        'div',
        { class: 'dropdown' },
        h('button', { class: 'tenant-button', 'aria-label': 'Tenant', on: { click: () => (menu.hidden = !menu.hidden) } }, session.tenant ? session.tenant : h('span', { class: 'muted' }, 'choose a tenant'), ' ▾'),
        menu,
      );
    } else {
      picker = h('span', { class: 'chip mono' }, tenants[0] ?? 'no tenant');
    }
    replace(
      this.tenantEl,
      h('span', { class: 'tenant-label' }, 'Tenant'),
      picker,
      h('span', { class: 'who', title: `Token ${who.name ?? ''}: scopes ${(who.scopes ?? []).join(', ')}` }, icon(icons.key), who.name ?? 'token'),
      h('button', { class: 'link-button', on: { click: () => session.setToken('', false, null) } }, 'Sign out'),
    );
  }

  openSignIn(): void {
    const err = this.dialog.querySelector('.dialog-error') as HTMLElement;
    err.textContent = '';
    this.dialog.showModal();
    (this.dialog.querySelector('input[type=password]') as HTMLInputElement).focus();
  }

  private signInDialog(): HTMLDialogElement {
    const token = h('input', { type: 'password', placeholder: 'myelin_…', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Token' });
    const remember = h('input', { type: 'checkbox' });
    const err = h('div', { class: 'dialog-error', role: 'alert' });
    const submit = async (ev: Event) => {
      ev.preventDefault();
      const t = token.value.trim();
      if (!t) return;
      try {
        const who = await whoami(t);
        session.setToken(t, remember.checked, who);
        token.value = '';
        dialog.close();
      } catch (e) {
        const status = (e as APIError).status;
        err.textContent = status === 401 ? 'The node does not know this token.' : status === 429 ? 'Too many failed attempts from this address; wait a little.' : (e as Error).message;
      }
    };
    const dialog = h(
      'dialog',
      { class: 'dialog' },
      h(
        'form',
        { on: { submit } },
        h('h2', null, 'Sign in with a token'),
        h('p', { class: 'muted small' }, 'A token made by ', h('code', null, 'myelin token create'), '. The UI sends it as ', h('code', null, 'Authorization: Bearer'), ' to this node only.'),
        token,
        h('label', { class: 'check' }, remember, ' Remember on this browser (otherwise until this tab closes)'),
        err,
        h('div', { class: 'dialog-actions' }, h('button', { type: 'button', on: { click: () => dialog.close() } }, 'Cancel'), h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
      ),
    );
    return dialog;
  }
}

/** The mark: a signal travelling along a sheathed axon. */
function brandMark(): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 32 32');
  svg.setAttribute('aria-hidden', 'true');
  const rect = document.createElementNS(ns, 'rect');
  rect.setAttribute('width', '32');
  rect.setAttribute('height', '32');
  rect.setAttribute('rx', '7');
  rect.setAttribute('fill', '#0e7490');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', 'M6 21c4 0 4-10 8-10s4 10 8 10 3-5 4-5');
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', '#fff');
  path.setAttribute('stroke-width', '3');
  path.setAttribute('stroke-linecap', 'round');
  svg.append(rect, path);
  return svg;
}
