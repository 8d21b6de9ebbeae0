// Who the UI talks as: the node's facts (written into the page by the
// server), the token (with auth on) and the tenant(s) sent as
// X-Scope-OrgID.

/** What the server writes into the index page (server/ui NodeInfo). */
export interface NodeInfo {
  version: string;
  node_id: string;
  ready: boolean;
  not_ready?: string;
  auth: boolean;
  multitenant: boolean;
}

/** The answer of GET /api/v1/auth/whoami. */
export interface WhoAmI {
  auth: boolean;
  name?: string;
  tenants?: string[];
  scopes?: string[];
}

function readNode(): NodeInfo {
  const el = document.getElementById('myelin-node');
  const fallback: NodeInfo = { version: '', node_id: '', ready: true, auth: false, multitenant: true };
  if (!el || !el.textContent) return fallback;
  try {
    return { ...fallback, ...(JSON.parse(el.textContent) as Partial<NodeInfo>) };
  } catch {
    return fallback;
  }
}

export const node: NodeInfo = readNode();

const tokenKey = 'myelin.token';
const tenantKey = 'myelin.tenant';

function storageGet(s: Storage, k: string): string {
  try {
    return s.getItem(k) ?? '';
  } catch {
    return ''; // storage disabled
  }
}

function storageSet(s: Storage, k: string, v: string): void {
  try {
    if (v) s.setItem(k, v);
    else s.removeItem(k);
  } catch {
    // storage disabled: the value lives for this page only
  }
}

type Listener = () => void;

/**
 * The session: token and tenant. The token is kept in sessionStorage
 * (this tab) unless the user asks to remember it (localStorage); the
 * tenant in localStorage. Listeners hear every change.
 */
class Session {
  token = storageGet(sessionStorage, tokenKey) || storageGet(localStorage, tokenKey);
  tenant = storageGet(localStorage, tenantKey);
  who: WhoAmI | null = null;
  private listeners: Listener[] = [];

  onChange(fn: Listener): void {
    this.listeners.push(fn);
  }

  private emit(): void {
    for (const fn of this.listeners) fn();
  }

  setToken(token: string, remember: boolean, who: WhoAmI | null): void {
    this.token = token;
    this.who = who;
    storageSet(sessionStorage, tokenKey, remember ? '' : token);
    storageSet(localStorage, tokenKey, remember ? token : '');
    // A tenant the new token does not grant would only earn 403s.
    if (who?.tenants && this.tenant && !this.tenantsOf(this.tenant).every((t) => who.tenants!.includes(t))) {
      this.tenant = '';
    }
    this.emit();
  }

  setWho(who: WhoAmI | null): void {
    this.who = who;
    this.emit();
  }

  setTenant(tenant: string): void {
    tenant = this.tenantsOf(tenant).join('|');
    if (tenant === this.tenant) return;
    this.tenant = tenant;
    storageSet(localStorage, tenantKey, tenant);
    this.emit();
  }

  /** The tenants a header value names ("a|b" -> [a, b]), sorted, distinct. */
  tenantsOf(v: string): string[] {
    return [...new Set(v.split('|').map((s) => s.trim()).filter(Boolean))].sort();
  }

  /** The tenant shown to the user, "" if none applies. */
  displayTenant(): string {
    if (!node.multitenant) return 'anonymous';
    if (this.tenant) return this.tenant;
    if (node.auth && this.who?.tenants?.length === 1) return this.who.tenants[0];
    return '';
  }

  /** Why queries cannot be sent yet, "" if they can: a tenant (or a token that implies one) is needed. */
  cannotQuery(): string {
    if (node.auth && !this.token) return 'Sign in with a token first (top right).';
    if (!node.multitenant || this.tenant || (node.auth && this.who?.tenants?.length === 1)) return '';
    return node.auth ? 'Choose one of the token\'s tenants first (top right).' : 'Enter a tenant first (top right).';
  }

  headers(): Record<string, string> {
    const h: Record<string, string> = {};
    if (this.token) h['Authorization'] = 'Bearer ' + this.token;
    if (this.tenant && node.multitenant) h['X-Scope-OrgID'] = this.tenant;
    return h;
  }
}

export const session = new Session();
