// Myelin's UI: one page, four views (query, cardinality, cluster, node),
// its state in the URL's fragment. Everything it shows comes from the
// node's HTTP API with the session's token and tenant.
import './style.css';
import { CardinalityPage } from './cardinality';
import { ClusterPage } from './cluster';
import { h, replace } from './dom';
import { Header, whoami } from './header';
import { NodePage } from './nodepage';
import { QueryPage } from './query';
import { node, session } from './session';
import { defaultQuery, formatRoute, parseRoute, type Page, type QueryState, type Route } from './url';

let route: Route = parseRoute(location.hash);
// A tenant in the link wins over the one remembered (checked against the
// token once it is known).
if (route.tenant !== null && node.multitenant) session.setTenant(route.tenant);

const main = h('main', { class: 'main' });
const header = new Header((p) => navigate(p));
const queryPage = new QueryPage(route.query, (q, push) => {
  route = { ...route, page: 'query', query: q };
  writeURL(push);
});
const cardinality = new CardinalityPage((expr) => {
  const q: QueryState = { ...defaultQuery(), expr, tab: 'table' };
  route = { ...route, page: 'query', query: q };
  writeURL(true);
  showPage(true);
});
const cluster = new ClusterPage();
const nodePage = new NodePage();

function writeURL(push: boolean): void {
  const hash = formatRoute({ ...route, tenant: session.tenant || null });
  if (hash === location.hash) return;
  if (push) history.pushState(null, '', hash);
  else history.replaceState(null, '', hash);
}

function navigate(p: Page): void {
  if (p === route.page) return;
  route = { ...route, page: p };
  writeURL(true);
  showPage(false);
}

/** Shows route's page; runs the query page's query if asked to. */
function showPage(runQuery: boolean): void {
  header.setPage(route.page);
  if (route.page !== 'cluster') cluster.stop();
  switch (route.page) {
    case 'query':
      replace(main, queryPage.el);
      if (runQuery) queryPage.show(route.query);
      break;
    case 'cardinality':
      replace(main, cardinality.el);
      cardinality.load();
      break;
    case 'cluster':
      replace(main, cluster.el);
      cluster.start();
      break;
    case 'node':
      replace(main, nodePage.el);
      nodePage.show();
      break;
  }
  document.title = `Myelin – ${route.page[0].toUpperCase()}${route.page.slice(1)}`;
}

// Back and forward (and links pasted into this tab).
window.addEventListener('popstate', () => {
  route = parseRoute(location.hash);
  if (route.tenant !== null && node.multitenant && session.tenantsOf(route.tenant).join('|') !== session.tenant) {
    session.setTenant(route.tenant); // shows the page, through the session's listener
    return;
  }
  showPage(true);
});

async function start(): Promise<void> {
  replace(document.getElementById('app')!, header.el, main);
  if (node.auth && session.token) {
    try {
      session.setWho(await whoami(session.token));
    } catch {
      session.setToken('', false, null); // no longer valid
    }
  }
  // A new tenant or token from now on: the URL names it, and the page
  // shows its data.
  session.onChange(() => {
    writeURL(false);
    if (route.page === 'query') queryPage.show({ ...route.query });
    else showPage(false);
  });
  showPage(true);
  if (route.page === 'query' && !route.query.expr) queryPage.focus();
  if (node.auth && !session.token) header.openSignIn();
}

start();
