/** Small DOM helpers for the jobs widgets. */

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** A Lab-styled button; `action` runs on click (its rejection is the caller's to report). */
export function button(
  label: string,
  cls: string,
  action: () => void,
  title?: string
): HTMLButtonElement {
  const node = el('button', `jp-mod-styled jp-condorhub-button ${cls}`, label);
  node.type = 'button';
  if (title) {
    node.title = title;
  }
  node.addEventListener('click', event => {
    event.stopPropagation(); // a button inside a clickable entry does only its own thing
    action();
  });
  return node;
}
