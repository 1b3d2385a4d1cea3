// Client-side navigation and the live refresh loop shared by the pages.
let router = () => undefined;

export function setRouter(fn) {
  router = fn;
}

export function navigate(href) {
  history.pushState(null, '', href);
  router();
  window.scrollTo(0, 0);
}

/**
 * Calls `tick` now and then `intervalMs` after each run finishes, while the tab is visible;
 * `tick` returns false to stop. Returns { stop, now } (now: refresh at once, e.g. after an action).
 */
export function poll(tick, intervalMs) {
  let stopped = false;
  let timer = null;
  const live = document.getElementById('live');
  const run = async () => {
    timer = null;
    if (stopped) return;
    if (document.hidden) {
      timer = setTimeout(run, intervalMs);
      return;
    }
    let again = true;
    try {
      live?.classList.add('on');
      again = (await tick()) !== false;
      live?.classList.remove('error');
    } catch (err) {
      live?.classList.add('error');
      live?.setAttribute('title', String(err?.message ?? err));
    }
    if (!stopped && again) timer = setTimeout(run, intervalMs);
    else live?.classList.remove('on');
  };
  run();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      live?.classList.remove('on');
    },
    now() {
      if (stopped) return;
      if (timer) clearTimeout(timer);
      run();
    },
  };
}
