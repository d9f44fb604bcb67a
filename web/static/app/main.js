// The UI's entry point: navigation bar, theme, and a router that picks the
// page from location.pathname (the server answers every page path with the
// same HTML).
import { html, render, useState, useEffect, currentTenant, setTenant, tenantHeader } from './lib.js';
import { GraphPage } from './graph.js';
import { AlertsPage } from './alerts.js';
import { TargetsPage } from './targets.js';
import { RulesPage } from './rules.js';
import { ConfigPage, StatusPage } from './status.js';
import { ClusterPage } from './cluster.js';
import { NotifierPage } from './notifier.js';

const routes = [
  { path: '/graph', title: 'Graph', page: GraphPage },
  { path: '/alerts', title: 'Alerts', page: AlertsPage },
  { path: '/rules', title: 'Rules', page: RulesPage },
  { path: '/targets', title: 'Targets', page: TargetsPage },
  { path: '/alertmanager/', title: 'Alertmanager', page: NotifierPage },
  { path: '/cluster', title: 'Cluster', page: ClusterPage },
  { path: '/status', title: 'Status', page: StatusPage },
  { path: '/config', title: 'Config', page: ConfigPage },
];

// Themes: "auto" follows the system; the choice is kept per browser.
const themeKey = 'pharos.theme';
function applyTheme(choice) {
  const dark = choice === 'dark' || (choice === 'auto' && window.matchMedia('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  document.documentElement.dataset.themeChoice = choice;
  window.dispatchEvent(new Event('pharos-theme'));
}

function currentRoute() {
  const p = location.pathname;
  return routes.find((r) => p === r.path || p === r.path.replace(/\/$/, '')) || null;
}

// navigate is the single way pages change the URL path; they update the
// query string themselves with history.replaceState.
export function navigate(url) {
  history.pushState(null, '', url);
  window.dispatchEvent(new Event('pharos-navigate'));
}

function App() {
  const [route, setRoute] = useState(currentRoute());
  const [theme, setTheme] = useState(localStorage.getItem(themeKey) || 'auto');
  useEffect(() => {
    const on = () => setRoute(currentRoute());
    window.addEventListener('popstate', on);
    window.addEventListener('pharos-navigate', on);
    return () => {
      window.removeEventListener('popstate', on);
      window.removeEventListener('pharos-navigate', on);
    };
  }, []);
  useEffect(() => {
    applyTheme(theme);
    localStorage.setItem(themeKey, theme);
    const mq = window.matchMedia('(prefers-color-scheme: dark)');
    const on = () => theme === 'auto' && applyTheme('auto');
    mq.addEventListener('change', on);
    return () => mq.removeEventListener('change', on);
  }, [theme]);
  useEffect(() => {
    document.title = route ? `${route.title} · Pharos` : 'Pharos';
  }, [route]);

  const nextTheme = { auto: 'light', light: 'dark', dark: 'auto' }[theme];
  const onNav = (e, r) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(r.path);
  };
  const Page = route ? route.page : null;
  return html`
    <header class="topbar">
      <a class="brand" href="/graph" onClick=${(e) => onNav(e, routes[0])}>Pharos</a>
      <nav class="nav" aria-label="main">
        ${routes.map((r) => html`<a href=${r.path} key=${r.path} class=${route === r ? 'active' : ''}
            aria-current=${route === r ? 'page' : undefined} onClick=${(e) => onNav(e, r)}>${r.title}</a>`)}
      </nav>
      <${Tenant} />
      <button type="button" class="theme" onClick=${() => setTheme(nextTheme)}
        title=${`Theme: ${theme} (switch to ${nextTheme})`} aria-label=${`theme ${theme}, switch to ${nextTheme}`}>
        ${{ auto: '◐', light: '☀', dark: '☾' }[theme]} ${theme}
      </button>
    </header>
    <main id="main">
      ${Page ? html`<${Page} key=${route.path} />` : html`<section class="page"><h1>Not found</h1><p>No page at ${location.pathname}.</p></section>`}
    </main>`;
}

// Tenant shows the tenant the UI reads as, once one is set or a call was
// refused for want of one; a new one reloads the page, so that every view
// reads again as that tenant.
function Tenant() {
  const tenant = currentTenant();
  const [needed, setNeeded] = useState(false);
  const [editing, setEditing] = useState(false);
  useEffect(() => {
    const on = () => setNeeded(true);
    window.addEventListener('pharos-tenant-needed', on);
    return () => window.removeEventListener('pharos-tenant-needed', on);
  }, []);
  if (!tenant && !needed) return null;
  if (tenant && !editing) {
    return html`<button type="button" class="tenant" onClick=${() => setEditing(true)}
      title=${`Reading as tenant ${tenant} (${tenantHeader}); click to change`}>tenant: ${tenant}</button>`;
  }
  const submit = (e) => {
    e.preventDefault();
    setTenant(new FormData(e.target).get('tenant').trim());
    location.reload();
  };
  return html`
    <form class=${'tenant-form' + (tenant ? '' : ' needed')} onSubmit=${submit}>
      <input name="tenant" aria-label="tenant" placeholder="tenant" value=${tenant} autofocus
        title=${`The tenant to read as, sent as ${tenantHeader}; empty for none`} />
      <button type="submit">use</button>
    </form>`;
}

applyTheme(localStorage.getItem(themeKey) || 'auto');
render(html`<${App} />`, document.getElementById('app'));
