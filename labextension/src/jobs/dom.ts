/** Small DOM helpers for the jobs widgets. */

import { el } from '../dom';

export { el };

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
