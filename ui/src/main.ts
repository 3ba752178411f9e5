/**
 * The dashboard's wiring: the token form, the colour scheme, the topology, the open function
 * (#/function/<bdf> in the address bar) and the event timeline, which also redraws what an
 * event touched.
 */
import { describeError, onAuth, token } from './api.js';
import { byId } from './dom.js';
import { FunctionView } from './function-view.js';
import { TopologyView } from './topology.js';
import { Timeline, type TimelineEvent } from './timeline.js';
import './style.css';

const SCHEME_KEY = 'vmmr.scheme';
const REDRAW_MS = 100;

const auth = byId<HTMLParagraphElement>('auth-state');
const fn = new FunctionView(byId('function'));
const topology = new TopologyView(byId('topology'), byId('pf-controls'), (bdf) => {
  location.hash = `#/function/${bdf}`;
});

function openFromHash(): void {
  const m = /^#\/function\/(.+)$/.exec(location.hash);
  if (!m) return;
  const bdf = decodeURIComponent(m[1]!);
  topology.select(bdf);
  void fn.open(bdf);
}

/** Redraws at most every REDRAW_MS whatever the event rate. */
function throttled(action: () => void): () => void {
  let timer: number | undefined;
  return () => {
    if (timer !== undefined) return;
    timer = window.setTimeout(() => {
      timer = undefined;
      action();
    }, REDRAW_MS);
  };
}
const redrawFunction = throttled(() => void fn.refresh());
const redrawTopology = throttled(() => void topology.refresh().catch(() => undefined));

function eventArrived(e: TimelineEvent): void {
  if (e.type === 'vf-enable' || e.type === 'vf-disable') redrawTopology();
  if (e.bdf === fn.current) redrawFunction();
}

const timeline = new Timeline(byId('timeline'), eventArrived);

function loadAll(): void {
  auth.textContent = '';
  topology.refresh().then(
    () => {
      openFromHash();
      timeline.connect();
    },
    (e: unknown) => (auth.textContent = describeError(e)),
  );
}

function setupToken(): void {
  const form = byId<HTMLFormElement>('token-form');
  const input = byId<HTMLInputElement>('token');
  input.value = token.get();
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    token.set(input.value.trim());
    loadAll();
  });
  byId('token-forget').addEventListener('click', () => {
    token.clear();
    input.value = '';
  });
  onAuth((ok) => {
    document.body.dataset['auth'] = ok ? 'ok' : 'refused';
    if (!ok) input.focus();
  });
}

function setupScheme(): void {
  const select = byId<HTMLSelectElement>('scheme');
  const apply = (scheme: string) => {
    if (scheme === 'auto') delete document.documentElement.dataset['scheme'];
    else document.documentElement.dataset['scheme'] = scheme;
  };
  select.value = localStorage.getItem(SCHEME_KEY) ?? 'auto';
  apply(select.value);
  select.addEventListener('change', () => {
    localStorage.setItem(SCHEME_KEY, select.value);
    apply(select.value);
  });
}

setupToken();
setupScheme();
window.addEventListener('hashchange', openFromHash);
loadAll();
Object.assign(window, { vmmrDashboard: { timeline, topology } });
