/**
 * Sidebar list of this server's TensorBoards: open, reload, stop; refreshed while it is visible.
 */
import { Widget } from '@lumino/widgets';

import {
  ITensorBoard,
  listTensorBoards,
  reloadTensorBoard,
  stopTensorBoard
} from './api';

export class TensorBoardPanel extends Widget {
  private list = document.createElement('ul');
  private status = document.createElement('div');
  private timer = 0;

  constructor(
    private open: (instance: ITensorBoard) => void,
    private start: () => void,
    private stopped: (id: string) => void
  ) {
    super();
    this.id = 'condorhub-tensorboards';
    this.addClass('jp-condorhub-tb-panel');
    this.title.caption = 'TensorBoards';
    const header = document.createElement('div');
    header.className = 'jp-condorhub-tb-header';
    header.textContent = 'TensorBoards';
    const startButton = document.createElement('button');
    startButton.className =
      'jp-mod-styled jp-condorhub-button jp-condorhub-tb-start';
    startButton.textContent = 'Start…';
    startButton.addEventListener('click', () => this.start());
    header.appendChild(startButton);
    this.status.className = 'jp-condorhub-tb-status';
    this.node.append(header, this.status, this.list);
  }

  protected onAfterShow(): void {
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), 5000);
  }

  protected onAfterHide(): void {
    window.clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    let instances: ITensorBoard[];
    try {
      instances = await listTensorBoards();
    } catch (error) {
      this.status.textContent = (error as Error).message;
      return;
    }
    this.status.textContent = instances.length
      ? ''
      : 'None running. Right-click a folder → “Start TensorBoard here”.';
    this.list.replaceChildren(
      ...instances.map(inst => {
        const item = document.createElement('li');
        item.className = 'jp-condorhub-tb-item';
        item.dataset.id = inst.id;
        const name = document.createElement('span');
        name.className = 'jp-condorhub-tb-name';
        name.textContent = `${inst.logdir || '/'} — ${inst.state}`;
        name.title = inst.message ?? `pid ${inst.pid}`;
        item.appendChild(name);
        const action = (label: string, run: () => Promise<unknown> | void) => {
          const b = document.createElement('button');
          b.className = `jp-mod-styled jp-condorhub-button jp-condorhub-tb-${label.toLowerCase()}`;
          b.textContent = label;
          b.addEventListener('click', async () => {
            await run();
            await this.refresh();
          });
          item.appendChild(b);
        };
        action('Open', () => this.open(inst));
        action('Reload', () => reloadTensorBoard(inst.id));
        action('Stop', async () => {
          await stopTensorBoard(inst.id);
          this.stopped(inst.id);
        });
        return item;
      })
    );
  }
}
