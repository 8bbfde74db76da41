/** A layer as the layer tree lists it: enough to choose which one a new panel shows. */
export interface SelectableLayer {
  name: string;
  op: string;
  /** It has maps to draw. */
  spatial: boolean;
  /** `featureMaps.layers` lists it. */
  matched: boolean;
}

/**
 * The layer a panel shows when nothing is selected yet: the first listed convolution (a padding
 * or input-like layer first in line shows little), else the first listed layer with maps, else
 * the first layer with maps. The engine computes it first, so it must agree with the webview.
 */
export function firstLayerToShow(layers: readonly SelectableLayer[]): string | undefined {
  const matched = layers.filter((l) => l.spatial && l.matched);
  return (matched.find((l) => /conv/i.test(l.op)) ?? matched[0] ?? layers.find((l) => l.spatial))?.name;
}

/** The layer a panel shows first: `preferred` (the one it showed last) when it has maps, else firstLayerToShow. */
export function layerShownFirst(layers: readonly SelectableLayer[], preferred: string | undefined): string | undefined {
  return layers.find((l) => l.name === preferred && l.spatial)?.name ?? firstLayerToShow(layers);
}
