/**
 * A TensorBoard in a Lab tab: an iframe on the server's proxy URL, with reload, stop and "open in a
 * browser tab" in its toolbar.
 */
import { MainAreaWidget, ToolbarButton } from '@jupyterlab/apputils';
import {
  IFrame,
  refreshIcon,
  stopIcon,
  launchIcon
} from '@jupyterlab/ui-components';

import { serverURL } from '../api';
import { ITensorBoard, reloadTensorBoard, stopTensorBoard } from './api';

export class TensorBoardTab extends MainAreaWidget<IFrame> {
  constructor(
    public instance: ITensorBoard,
    private onChange: () => void
  ) {
    // TensorBoard is the user's own program, served from this origin: its scripts need same-origin to
    // call its data API through the proxy (which checks exactly that).
    const frame = new IFrame({
      sandbox: [
        'allow-scripts',
        'allow-same-origin',
        'allow-popups',
        'allow-downloads',
        'allow-forms'
      ],
      referrerPolicy: 'same-origin'
    });
    super({ content: frame });
    this.id = `condorhub-tensorboard-${instance.id}`;
    this.addClass('jp-condorhub-tensorboard');
    this.title.label = `TensorBoard: ${instance.logdir || '/'}`;
    this.title.caption = `TensorBoard for ${instance.logdir || 'the root folder'} (${instance.id})`;
    this.title.closable = true;
    this.toolbar.addItem(
      'reload',
      new ToolbarButton({
        icon: refreshIcon,
        label: 'Reload',
        tooltip: 'Restart TensorBoard (new runs, a stuck process)',
        onClick: () => void this.reload()
      })
    );
    this.toolbar.addItem(
      'stop',
      new ToolbarButton({
        icon: stopIcon,
        label: 'Stop',
        tooltip: 'Stop this TensorBoard and close the tab',
        onClick: () => void this.stop()
      })
    );
    this.toolbar.addItem(
      'open',
      new ToolbarButton({
        icon: launchIcon,
        tooltip: 'Open in a browser tab',
        onClick: () => window.open(this.url, '_blank')
      })
    );
    this.content.url = this.url;
  }

  get url(): string {
    return serverURL(this.instance.url);
  }

  async reload(): Promise<void> {
    this.instance = await reloadTensorBoard(this.instance.id);
    // A new src (the proxy holds the request until the new process answers).
    this.content.url = `${this.url}?reload=${Date.now()}`;
    this.onChange();
  }

  async stop(): Promise<void> {
    await stopTensorBoard(this.instance.id);
    this.onChange();
    this.dispose();
  }
}
