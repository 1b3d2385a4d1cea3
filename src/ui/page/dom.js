// DOM helpers. User content (queries, results, labels, errors) only ever enters the page as text:
// h() appends strings as text nodes and sets attributes with setAttribute, never innerHTML.

/** Creates an element: attributes (on* = listeners), then children (strings become text nodes). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
export const isTerminal = (status) => TERMINAL.has(status);

export function badge(status) {
  return h('span', { class: `badge ${/^[a-z]+$/.test(status ?? '') ? status : 'unknown'}` }, status ?? '?');
}

export function time(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return m < 60 ? `${m} min ${Math.round((ms % 60_000) / 1000)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A same-origin link handled by the client-side router. */
export function link(href, ...children) {
  return h('a', { href, 'data-nav': '' }, ...children);
}

export function table(columns, rows, empty = 'Nothing yet.') {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.class ?? null }, c.title)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: c.class ?? null }, c.cell(r)))))));
}

/** A <pre> with a value as text (JSON pretty-printed when it parses). */
export function textBlock(value, cls = 'value', pretty = true) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '—');
  let text = String(value);
  try {
    const parsed = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object') text = JSON.stringify(parsed, null, pretty ? 2 : undefined);
  } catch {
    // not JSON: shown as it is
  }
  return h('pre', { class: cls }, text);
}

/** Loads a same-origin script once (vendor libraries are only fetched by the page that needs them). */
const loaded = new Map();
export function loadScript(src) {
  if (!loaded.has(src)) {
    loaded.set(src, new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error(`cannot load ${src}`));
      document.head.append(s);
    }));
  }
  return loaded.get(src);
}

export function loadStyle(href) {
  if (!document.querySelector(`link[data-href="${CSS.escape(href)}"]`)) {
    document.head.append(h('link', { rel: 'stylesheet', href, 'data-href': href }));
  }
}
