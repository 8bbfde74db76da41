/** Loading and error views: full-panel when there is no result yet, a banner above it otherwise. */
import type { PanelAction, PanelActionId } from '../src/shared/protocol';
import { h } from './dom';

export interface ErrorInfo {
  fileName: string;
  message: string;
  detail?: string;
  /** What the user can do about it (the host acts on the id). */
  actions?: PanelAction[];
}

export function spinner(): HTMLElement {
  return h('span', { class: 'spinner', role: 'progressbar', 'aria-label': 'Working' });
}

export function loadingView(fileName: string, message: string): HTMLElement {
  return h(
    'div',
    { class: 'status-view loading-view', role: 'status', 'aria-live': 'polite' },
    spinner(),
    h('div', { class: 'status-title' }, 'Computing feature maps'),
    h('div', { class: 'status-file' }, fileName),
    h('div', { class: 'loading-message' }, message),
  );
}

function detailBlock(detail: string | undefined): HTMLElement | null {
  if (!detail) return null;
  return h('details', { class: 'error-detail' }, h('summary', {}, 'Details'), h('pre', {}, detail));
}

function retryButton(onRetry: () => void, primary: boolean): HTMLButtonElement {
  const button = h('button', { class: `button retry${primary ? '' : ' secondary'}`, type: 'button' }, 'Retry');
  button.addEventListener('click', onRetry);
  return button;
}

/** The error's own actions; the first is the primary button when `primary`. */
function actionButtons(
  actions: PanelAction[] | undefined,
  onAction: (id: PanelActionId) => void,
  primary: boolean,
): HTMLButtonElement[] {
  return (actions ?? []).map((action, i) => {
    const button = h(
      'button',
      { class: `button action${primary && i === 0 ? '' : ' secondary'}`, type: 'button', 'data-action': action.id },
      action.label,
    );
    button.addEventListener('click', () => onAction(action.id));
    return button;
  });
}

export function errorView(
  error: ErrorInfo,
  onRetry: () => void,
  onOpenSettings: () => void,
  onSelectModel: () => void,
  onAction: (id: PanelActionId) => void,
): HTMLElement {
  const settings = h('button', { class: 'button secondary', type: 'button' }, 'Open Settings');
  settings.addEventListener('click', onOpenSettings);
  // A model that cannot load or download leaves the user one click from another (the bundled one works offline).
  const selectModel = h('button', { class: 'button secondary', type: 'button' }, 'Change Model…');
  selectModel.addEventListener('click', onSelectModel);
  return h(
    'div',
    { class: 'status-view error-view', role: 'alert' },
    h('div', { class: 'status-title' }, 'Could not compute feature maps'),
    h('div', { class: 'status-file' }, error.fileName),
    h('div', { class: 'error-message' }, error.message),
    detailBlock(error.detail),
    // An error with its own remedy (choose the architecture, install torch) offers it first.
    h(
      'div',
      { class: 'status-actions' },
      ...actionButtons(error.actions, onAction, true),
      retryButton(onRetry, !error.actions?.length),
      selectModel,
      settings,
    ),
  );
}

/** Error over a result that is still shown and usable. */
export function errorBanner(
  error: ErrorInfo,
  onRetry: () => void,
  onDismiss: () => void,
  onAction: (id: PanelActionId) => void,
): HTMLElement {
  const dismiss = h('button', { class: 'icon-button', type: 'button', title: 'Dismiss', 'aria-label': 'Dismiss' }, '×');
  dismiss.addEventListener('click', onDismiss);
  return h(
    'div',
    { class: 'banner error-banner', role: 'alert' },
    h('span', { class: 'banner-icon', 'aria-hidden': 'true' }, '!'),
    h(
      'div',
      { class: 'banner-body' },
      h(
        'div',
        { class: 'banner-text' },
        error.fileName ? h('span', { class: 'banner-file' }, `${error.fileName}: `) : null,
        h('span', { class: 'error-message' }, error.message),
      ),
      detailBlock(error.detail),
    ),
    ...actionButtons(error.actions, onAction, false),
    retryButton(onRetry, false),
    dismiss,
  );
}

export function loadingBanner(fileName: string, message: string): HTMLElement {
  return h(
    'div',
    { class: 'banner loading-banner', role: 'status', 'aria-live': 'polite' },
    spinner(),
    h(
      'div',
      { class: 'banner-body banner-text' },
      h('span', { class: 'banner-file' }, `${fileName}: `),
      h('span', { class: 'loading-message' }, message),
    ),
  );
}
