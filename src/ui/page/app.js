// Entry point: a tiny router over two pages, the instance list (/) and an instance (/i/<id>).
import { get } from './api.js';
import { fill, h } from './dom.js';
import { showInstance } from './instance.js';
import { showList } from './list.js';
import { navigate, setRouter } from './nav.js';

const main = document.getElementById('main');
let current = null; // the page shown: { stop() }

function route() {
  current?.stop();
  const m = /^\/i\/([0-9a-f]{8})$/.exec(location.pathname);
  current = m ? showInstance(main, m[1]) : showList(main, new URLSearchParams(location.search));
}

setRouter(route);
document.addEventListener('click', (e) => {
  const a = e.target instanceof Element ? e.target.closest('a[data-nav]') : null;
  if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);

get('/api/me').then(
  (me) => fill(document.getElementById('who'), `as ${me.role} on ${me.database}`, me.read_only ? h('span', { class: 'tag' }, 'read-only') : null),
  () => undefined,
);
route();
