/**
 * Canvas can't use CSS variables: read them here, and tell drawers when the theme or the
 * device pixel ratio changes so anything themed or DPR-sized on a canvas is redrawn.
 */

/** A VS Code theme variable (e.g. `--vscode-foreground`), or `fallback` if it isn't set. */
export function cssVar(name: string, fallback = ''): string {
  const value = getComputedStyle(document.body).getPropertyValue(name).trim();
  return value || fallback;
}

/** VS Code swaps body classes (vscode-dark/light/high-contrast) and the html style on theme change. */
export function onThemeChange(callback: () => void): () => void {
  let pending = 0;
  const schedule = (): void => {
    if (pending) return;
    pending = requestAnimationFrame(() => {
      pending = 0;
      callback();
    });
  };
  const observer = new MutationObserver(schedule);
  observer.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });
  return () => observer.disconnect();
}

/** Fires when devicePixelRatio changes (zoom, moving the window to another monitor). */
export function onDprChange(callback: () => void): () => void {
  let query: MediaQueryList | undefined;
  const listen = (): void => {
    query = matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`);
    query.addEventListener('change', handle, { once: true });
  };
  const handle = (): void => {
    callback();
    listen();
  };
  listen();
  return () => query?.removeEventListener('change', handle);
}
