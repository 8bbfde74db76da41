/**
 * The layer tree: every layer in model order, consecutive layers of the same `group` folded
 * under a collapsible group row. ARIA tree semantics; the tree element keeps DOM focus and
 * points at the active row with aria-activedescendant.
 */
import type { LayerInfo } from '../src/shared/protocol';
import { h } from './dom';
import { formatShape } from './format';

export interface LayerTreeCallbacks {
  onSelect(layer: string): void;
  onToggleGroup(group: string, collapsed: boolean): void;
  onShowAll(showAll: boolean): void;
}

export interface LayerTreeView {
  layers: readonly LayerInfo[];
  selected: string | undefined;
  showAll: boolean;
  collapsed: ReadonlySet<string>;
}

interface GroupRun {
  name: string;
  layers: LayerInfo[];
}

/** Runs of consecutive layers sharing a group, so model order is never broken by grouping. */
export function groupRuns(layers: readonly LayerInfo[]): GroupRun[] {
  const runs: GroupRun[] = [];
  for (const layer of layers) {
    const last = runs[runs.length - 1];
    if (last && last.name === layer.group) last.layers.push(layer);
    else runs.push({ name: layer.group, layers: [layer] });
  }
  return runs;
}

export const isVisible = (layer: LayerInfo, showAll: boolean): boolean => showAll || layer.matched;

export class LayerTree {
  readonly element: HTMLElement;
  private readonly tree: HTMLElement;
  private readonly countLabel: HTMLElement;
  private readonly toggle: HTMLInputElement;
  private readonly toggleLabel: HTMLElement;
  private readonly note: HTMLElement;
  private rowsByLayer = new Map<string, HTMLElement>();
  private groupRows = new Map<string, { row: HTMLElement; children: HTMLElement }>();
  private groupOfLayer = new Map<string, string>();
  private view: LayerTreeView | undefined;
  /** What the rows were built from (see render). */
  private builtFrom: string | undefined;
  /** The row keyboard focus is on: the selected layer, or a group row after Left. */
  private active: HTMLElement | undefined;
  private idSeq = 0;

  constructor(private readonly callbacks: LayerTreeCallbacks) {
    this.countLabel = h('span', { class: 'layer-count' });
    this.toggle = h('input', { type: 'checkbox', class: 'show-all-toggle' });
    this.toggle.addEventListener('change', () => this.callbacks.onShowAll(this.toggle.checked));
    this.toggleLabel = h('label', { class: 'show-all' }, this.toggle, 'Show all layers');
    this.note = h('div', { class: 'layer-note', hidden: true });
    this.tree = h('div', { class: 'layer-tree', role: 'tree', tabindex: 0, 'aria-label': 'Layers' });
    this.tree.addEventListener('keydown', (e) => this.onKey(e));
    this.tree.addEventListener('click', (e) => this.onClick(e));
    this.element = h(
      'aside',
      { class: 'layer-panel' },
      h(
        'div',
        { class: 'panel-head' },
        h('span', { class: 'panel-title' }, 'Layers'),
        this.countLabel,
        this.toggleLabel,
      ),
      this.note,
      this.tree,
    );
  }

  /**
   * Rebuilds the rows when what they show changed (another model, the layers setting, show-all);
   * for another image of the same model only the selection is updated: the rows, and the
   * layout the browser made of them, stay.
   */
  render(view: LayerTreeView): void {
    const builtFrom = JSON.stringify([view.showAll, [...view.collapsed].sort(), view.layers]);
    if (builtFrom === this.builtFrom) {
      this.view = view;
      this.setSelected(view.selected, false);
      return;
    }
    this.builtFrom = builtFrom;
    this.view = view;
    const matched = view.layers.filter((l) => l.matched).length;
    const allMatched = matched === view.layers.length;
    this.toggleLabel.hidden = allMatched || matched === 0;
    this.toggle.checked = view.showAll;
    const shown = view.layers.filter((l) => isVisible(l, view.showAll)).length;
    this.countLabel.textContent = shown === view.layers.length ? `${shown}` : `${shown} of ${view.layers.length}`;
    this.note.hidden = matched > 0 || view.layers.length === 0;
    this.note.textContent = 'No layer matches the featureMaps.layers setting; showing all layers.';

    this.rowsByLayer = new Map();
    this.groupRows = new Map();
    this.groupOfLayer = new Map();
    this.active = undefined;
    const fragment = document.createDocumentFragment();
    for (const run of groupRuns(view.layers)) {
      const visible = run.layers.filter((l) => isVisible(l, view.showAll));
      if (visible.length === 0) continue;
      if (visible.length === 1) {
        fragment.append(this.layerRow(visible[0], 1));
        continue;
      }
      const collapsed = view.collapsed.has(run.name);
      const children = h('div', { role: 'group', class: 'layer-group-children', hidden: collapsed });
      for (const layer of visible) {
        children.append(this.layerRow(layer, 2));
        this.groupOfLayer.set(layer.name, run.name);
      }
      const row = h(
        'div',
        {
          class: 'group-row',
          role: 'treeitem',
          id: this.nextId(),
          'aria-level': 1,
          'aria-expanded': String(!collapsed),
          'data-group': run.name,
          title: `${run.name}: ${visible.length} layers`,
        },
        h('span', { class: 'chevron', 'aria-hidden': 'true' }),
        h('span', { class: 'group-name' }, run.name),
        h('span', { class: 'group-count' }, String(visible.length)),
      );
      // The treeitem owns its children group so screen readers announce the nesting.
      const wrapper = h('div', { class: 'layer-group' }, row, children);
      this.groupRows.set(run.name, { row, children });
      fragment.append(wrapper);
    }
    this.tree.replaceChildren(fragment);
    if (this.rowsByLayer.size === 0) {
      this.tree.append(h('div', { class: 'tree-empty' }, 'This model reports no layers.'));
    }
    this.setSelected(view.selected, false);
  }

  /** Updates selection marks without rebuilding; scrolls the row into view when asked. */
  setSelected(layer: string | undefined, scroll = true): void {
    if (this.view) this.view = { ...this.view, selected: layer };
    for (const row of this.rowsByLayer.values()) row.setAttribute('aria-selected', 'false');
    const row = layer === undefined ? undefined : this.rowsByLayer.get(layer);
    if (row) {
      row.setAttribute('aria-selected', 'true');
      const group = this.groupOfLayer.get(layer ?? '');
      const g = group === undefined ? undefined : this.groupRows.get(group);
      this.setActive(g && g.children.hidden ? g.row : row, scroll);
    } else {
      this.setActive(undefined, false);
    }
  }

  setCollapsed(group: string, collapsed: boolean): void {
    const g = this.groupRows.get(group);
    if (!g) return;
    g.children.hidden = collapsed;
    g.row.setAttribute('aria-expanded', String(!collapsed));
  }

  focus(): void {
    this.tree.focus();
  }

  private nextId(): string {
    return `fm-tree-${++this.idSeq}`;
  }

  private layerRow(layer: LayerInfo, level: number): HTMLElement {
    const shape = formatShape(layer.shape);
    const row = h(
      'div',
      {
        class: `layer-row${layer.matched ? '' : ' unmatched'}`,
        role: 'treeitem',
        id: this.nextId(),
        'aria-level': level,
        'aria-selected': 'false',
        'aria-disabled': layer.spatial ? undefined : 'true',
        'data-layer': layer.name,
        title: `${layer.name}\n${layer.op} · ${shape}${layer.spatial ? '' : '\nNo spatial maps to draw'}`,
      },
      h('span', { class: 'layer-name' }, layer.name),
      h('span', { class: 'layer-op' }, layer.op),
      h('span', { class: 'layer-shape' }, shape),
    );
    this.rowsByLayer.set(layer.name, row);
    return row;
  }

  private setActive(row: HTMLElement | undefined, scroll: boolean): void {
    this.active?.classList.remove('active');
    this.active = row;
    if (!row) {
      this.tree.removeAttribute('aria-activedescendant');
      return;
    }
    row.classList.add('active');
    this.tree.setAttribute('aria-activedescendant', row.id);
    // At the next frame, with the rest of the frame's layout: scrolling now would make the
    // browser lay out the page in the middle of a change (a new result's grid waits on it).
    if (scroll) requestAnimationFrame(() => row.isConnected && row.scrollIntoView({ block: 'nearest' }));
  }

  private isSelectable(row: HTMLElement): boolean {
    return row.classList.contains('layer-row') && row.getAttribute('aria-disabled') !== 'true';
  }

  /** Rows a user can currently see, in order (rows inside collapsed groups excluded). */
  private visibleRows(): HTMLElement[] {
    return Array.from(this.tree.querySelectorAll<HTMLElement>('.group-row, .layer-row')).filter(
      (row) => !row.closest('[hidden]'),
    );
  }

  private toggleGroup(group: string): void {
    const g = this.groupRows.get(group);
    if (!g) return;
    this.callbacks.onToggleGroup(group, !g.children.hidden);
  }

  private onClick(e: MouseEvent): void {
    const target = e.target instanceof Element ? e.target : null;
    const row = target?.closest<HTMLElement>('.group-row, .layer-row');
    if (!row) return;
    if (row.classList.contains('group-row')) {
      const group = row.dataset.group ?? '';
      this.setActive(row, false);
      this.toggleGroup(group);
    } else if (this.isSelectable(row) && row.dataset.layer !== undefined) {
      this.callbacks.onSelect(row.dataset.layer);
    }
  }

  private onKey(e: KeyboardEvent): void {
    const rows = this.visibleRows();
    const selectable = rows.filter((r) => this.isSelectable(r));
    const active = this.active && rows.includes(this.active) ? this.active : undefined;
    const index = active ? rows.indexOf(active) : -1;
    const select = (row: HTMLElement | undefined): void => {
      if (row?.dataset.layer !== undefined) this.callbacks.onSelect(row.dataset.layer);
    };
    const group = active?.classList.contains('group-row')
      ? active.dataset.group
      : this.groupOfLayer.get(active?.dataset.layer ?? '');
    const g = group === undefined ? undefined : this.groupRows.get(group);

    switch (e.key) {
      case 'ArrowDown':
        select(rows.slice(index + 1).find((r) => this.isSelectable(r)) ?? (index < 0 ? selectable[0] : undefined));
        break;
      case 'ArrowUp': {
        const before = index < 0 ? [] : rows.slice(0, index).reverse();
        select(before.find((r) => this.isSelectable(r)));
        break;
      }
      case 'Home':
        select(selectable[0]);
        break;
      case 'End':
        select(selectable[selectable.length - 1]);
        break;
      case 'ArrowLeft':
        if (g && group !== undefined) {
          if (!g.children.hidden) this.callbacks.onToggleGroup(group, true);
          this.setActive(g.row, true);
        }
        break;
      case 'ArrowRight':
        if (g && group !== undefined && active === g.row) {
          if (g.children.hidden) {
            this.callbacks.onToggleGroup(group, false);
            // Back onto the selected layer if it lives in this group.
            const selectedRow = this.view?.selected ? this.rowsByLayer.get(this.view.selected) : undefined;
            if (selectedRow && g.children.contains(selectedRow)) this.setActive(selectedRow, true);
          } else {
            select(
              Array.from(g.children.children).find(
                (r): r is HTMLElement => r instanceof HTMLElement && this.isSelectable(r),
              ),
            );
          }
        }
        break;
      case 'Enter':
      case ' ':
        if (active?.classList.contains('group-row') && group !== undefined) this.toggleGroup(group);
        break;
      default:
        return;
    }
    e.preventDefault();
  }
}
