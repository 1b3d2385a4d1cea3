// The workflow graph: the server renders our explain model as Mermaid text (src/core/explain.ts,
// one class per inferred status); Mermaid draws it here. Strict security level and SVG text labels:
// labels are text, never HTML. Redrawn only when the text (i.e. a status) changes.
import { loadScript } from './dom.js';

let initialized = false;
let counter = 0;

export function createGraph(container) {
  let shown = null;
  return {
    async update(text) {
      if (text === shown) return;
      if (text === null) {
        shown = null;
        container.replaceChildren(document.createTextNode('The stored graph cannot be drawn (see the node table).'));
        return;
      }
      await loadScript('/vendor/mermaid.min.js');
      const mermaid = window.mermaid;
      if (!initialized) {
        mermaid.initialize({
          startOnLoad: false,
          securityLevel: 'strict',
          htmlLabels: false,
          flowchart: { htmlLabels: false, useMaxWidth: true },
          theme: 'neutral',
          maxTextSize: 200000,
        });
        initialized = true;
      }
      const { svg } = await mermaid.render(`pgd-graph-${++counter}`, text);
      if (text === shown) return;
      shown = text;
      // Mermaid's output (strict level: sanitised by its DOMPurify) is parsed as SVG, not HTML.
      const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
      const root = doc.documentElement;
      if (root.nodeName !== 'svg') throw new Error('graph rendering failed');
      for (const s of root.querySelectorAll('script, foreignObject')) s.remove();
      // Our Mermaid text writes <, >, &, " and # as Mermaid entity codes (#60; ...), which SVG-text
      // labels show as &#60;: decode them inside text nodes, where they can only ever be text.
      const walker = doc.createTreeWalker(root, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        if (n.nodeValue.includes('&#')) n.nodeValue = n.nodeValue.replace(/&#([0-9]{1,6});/g, (m, code) => String.fromCodePoint(Number(code)));
      }
      container.replaceChildren(document.importNode(root, true));
    },
  };
}
