import { LabIcon } from '@jupyterlab/ui-components';

export const scanIcon = new LabIcon({
  name: 'condorhub:scan',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<rect x="3" y="3" width="8" height="8" rx="1"/><rect x="13" y="3" width="8" height="8" rx="1"/>' +
    '<rect x="3" y="13" width="8" height="8" rx="1"/><rect x="13" y="13" width="8" height="8" rx="1" opacity=".5"/></g></svg>'
});

export const tensorboardIcon = new LabIcon({
  name: 'condorhub:tensorboard',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M3 20h18v1.5H3z"/><path d="M4 17l4.5-6 4 3.5L19 5l1.2.9-7.5 10.6-4-3.5-3.5 4.9z"/></g></svg>'
});
