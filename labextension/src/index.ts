/**
 * condorhub's JupyterLab extension: the parameter-scan browser and the TensorBoard manager.
 * Both start from the file browser's context menu (on a folder), the launcher and the command palette.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  WidgetTracker,
  showErrorMessage
} from '@jupyterlab/apputils';
import {
  IDefaultFileBrowser,
  IFileBrowserFactory
} from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';

import { coursesPlugin } from './courses/pull';
import { publishPlugin } from './courses/publish';
import { jobsPlugin } from './jobs/plugin';
import { limitsPlugin } from './limits/plugin';
import { scanIcon, tensorboardIcon } from './icons';
import type { ScanBrowser } from './scan/widget';
import {
  ITensorBoard,
  getTensorBoard,
  startTensorBoard
} from './tensorboard/api';
// The TensorBoard side panel is added at activation, so its module is needed at once.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { TensorBoardPanel } from './tensorboard/panel';
import { TensorBoardTab } from './tensorboard/widget';

const CATEGORY = 'condorhub';
const CMD = {
  scan: 'condorhub:open-scan-browser',
  startTensorBoard: 'condorhub:start-tensorboard',
  openTensorBoard: 'condorhub:open-tensorboard'
};
/** The arguments the folder commands take (describedBy: their description for whatever calls them). */
const FOLDER_ARGS = {
  args: {
    type: 'object',
    properties: {
      path: {
        type: 'string',
        description:
          'The folder, relative to the Lab root; default: the right-clicked folder, else the one the file browser shows'
      },
      isContextMenu: {
        type: 'boolean',
        description: 'Invoked from the file browser context menu'
      },
      isPalette: {
        type: 'boolean',
        description: 'Invoked from the command palette'
      }
    }
  }
};
/** The scan browser's: a folder's, plus what a restored tab had (after a page reload). */
const SCAN_ARGS = {
  args: {
    ...FOLDER_ARGS.args,
    properties: {
      ...FOLDER_ARGS.args.properties,
      pattern: {
        type: 'string',
        description:
          'The pattern to show; default: the last one saved for the folder, else the suggested one'
      },
      id: {
        type: 'string',
        description:
          'The tab to restore (its saved id, so that a reload keeps one entry per tab)'
      }
    }
  }
};
/** Folders in the file browser listing: the context menu items apply to them. */
const FOLDER_SELECTOR = '.jp-DirListing-item[data-isdir="true"]';

/**
 * The folder a command applies to: the one right-clicked (args.path or the browser's selection when
 * invoked from the context menu), else the folder the file browser shows.
 */
function targetFolder(
  args: Record<string, unknown>,
  factory: IFileBrowserFactory,
  browser: IDefaultFileBrowser | null,
  fromContextMenu: boolean
): string {
  if (typeof args.path === 'string') {
    return args.path;
  }
  const current = factory.tracker.currentWidget ?? browser;
  if (fromContextMenu && current) {
    for (const item of current.selectedItems()) {
      if (item.type === 'directory') {
        return item.path;
      }
    }
  }
  return current?.model.path ?? '';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@condorhub/lab:plugin',
  description: 'Parameter-scan browser and TensorBoard manager',
  autoStart: true,
  requires: [IFileBrowserFactory],
  optional: [IDefaultFileBrowser, ICommandPalette, ILauncher, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    factory: IFileBrowserFactory,
    browser: IDefaultFileBrowser | null,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null
  ) => {
    const openFile = (path: string) =>
      void app.commands.execute('docmanager:open', { path });
    const scans = new WidgetTracker<MainAreaWidget<ScanBrowser>>({
      namespace: 'condorhub-scan'
    });
    const tensorboards = new WidgetTracker<TensorBoardTab>({
      namespace: 'condorhub-tensorboard'
    });

    // --- scan browser ---------------------------------------------------------------------------------
    app.commands.addCommand(CMD.scan, {
      label: args =>
        args.isContextMenu
          ? 'Browse as parameter scan'
          : 'Parameter scan browser',
      caption:
        'Show the files of a parameter scan as a grid over its parameters',
      icon: args => (args.isPalette ? undefined : scanIcon),
      describedBy: SCAN_ARGS,
      execute: async args => {
        const folder = targetFolder(
          args,
          factory,
          browser,
          !!args.isContextMenu
        );
        // Loaded when first used: the scan browser's code stays out of the Lab's start.
        const { ScanBrowser } = await import('./scan/widget');
        const content = new ScanBrowser(folder, openFile);
        const widget = new MainAreaWidget({ content });
        // A restored tab keeps its id: the restorer's entry is per id, so a reload does not add another.
        const restoredId =
          typeof args.id === 'string' && /^condorhub-scan-[\w-]+$/.test(args.id)
            ? args.id
            : null;
        widget.id = restoredId ?? `condorhub-scan-${Date.now()}`;
        widget.title.label = `Scan: ${folder || '/'}`;
        widget.title.icon = scanIcon;
        widget.title.closable = true;
        app.shell.add(widget, 'main');
        void scans.add(widget);
        // Folder and pattern are saved as they change, so a reload brings the tab back as it was.
        content.stateChanged.connect(() => void scans.save(widget));
        if (!restoredId) {
          app.shell.activateById(widget.id);
        }
        await content.load(
          typeof args.pattern === 'string' ? args.pattern : undefined
        );
      }
    });

    // --- TensorBoard ----------------------------------------------------------------------------------
    const refreshPanel = () => void panel.refresh();
    const openTab = (instance: ITensorBoard) => {
      const existing = tensorboards.find(
        tab => tab.instance.id === instance.id
      );
      if (existing) {
        app.shell.activateById(existing.id);
        return existing;
      }
      const tab = new TensorBoardTab(instance, refreshPanel);
      tab.title.icon = tensorboardIcon;
      app.shell.add(tab, 'main');
      void tensorboards.add(tab);
      app.shell.activateById(tab.id);
      return tab;
    };

    app.commands.addCommand(CMD.startTensorBoard, {
      label: args =>
        args.isContextMenu ? 'Start TensorBoard here' : 'TensorBoard',
      caption: 'Start TensorBoard for a log folder and show it in a tab',
      icon: args => (args.isPalette ? undefined : tensorboardIcon),
      describedBy: FOLDER_ARGS,
      execute: async args => {
        let folder = targetFolder(args, factory, browser, !!args.isContextMenu);
        if (!args.isContextMenu && typeof args.path !== 'string') {
          const answer = await InputDialog.getText({
            title: 'Start TensorBoard',
            label: 'Log folder (relative to the Lab root)',
            text: folder
          });
          if (!answer.button.accept || answer.value === null) {
            return;
          }
          folder = answer.value.trim().replace(/^\/+|\/+$/g, '');
        }
        try {
          const instance = await startTensorBoard(folder);
          refreshPanel();
          return openTab(instance).id;
        } catch (error) {
          await showErrorMessage(
            'TensorBoard did not start',
            (error as Error).message
          );
        }
      }
    });

    app.commands.addCommand(CMD.openTensorBoard, {
      label: 'Open TensorBoard tab',
      describedBy: {
        args: {
          type: 'object',
          properties: {
            id: {
              type: 'string',
              description: 'The id of a running TensorBoard instance'
            }
          },
          required: ['id']
        }
      },
      execute: async args => openTab(await getTensorBoard(String(args.id))).id
    });

    const panel = new TensorBoardPanel(
      instance => openTab(instance),
      () => void app.commands.execute(CMD.startTensorBoard),
      id => tensorboards.find(tab => tab.instance.id === id)?.dispose()
    );
    panel.title.icon = tensorboardIcon;
    app.shell.add(panel, 'left', { rank: 600 });

    // --- where the commands appear -------------------------------------------------------------------
    app.contextMenu.addItem({
      command: CMD.scan,
      selector: FOLDER_SELECTOR,
      rank: 20,
      args: { isContextMenu: true }
    });
    app.contextMenu.addItem({
      command: CMD.startTensorBoard,
      selector: FOLDER_SELECTOR,
      rank: 21,
      args: { isContextMenu: true }
    });
    if (palette) {
      palette.addItem({
        command: CMD.scan,
        category: CATEGORY,
        args: { isPalette: true }
      });
      palette.addItem({
        command: CMD.startTensorBoard,
        category: CATEGORY,
        args: { isPalette: true }
      });
    }
    if (launcher) {
      launcher.add({ command: CMD.scan, category: 'Other', rank: 10 });
      launcher.add({
        command: CMD.startTensorBoard,
        category: 'Other',
        rank: 11
      });
    }
    if (restorer) {
      // Scan-browser tabs come back after a page reload with their folder and pattern, like other tabs.
      void restorer.restore(scans, {
        command: CMD.scan,
        args: tab => ({
          path: tab.content.folder,
          pattern: tab.content.pattern,
          id: tab.id
        }),
        name: tab => tab.id
      });
      // TensorBoard tabs come back after a page reload as long as their instance still runs.
      void restorer.restore(tensorboards, {
        command: CMD.openTensorBoard,
        args: tab => ({ id: tab.instance.id }),
        name: tab => tab.instance.id
      });
    }
  }
};

// The course pulls' notifications, Publish to course…, the HTCondor jobs and the runtime limit's warnings:
// plugins of their own (src/courses/, src/jobs/, src/limits/).
export default [plugin, coursesPlugin, publishPlugin, jobsPlugin, limitsPlugin];
