import type { LoadedModel, ModelIdentity } from '../model';
import type { Tf } from '../tf';
import { loadVgg16NoTop } from './vgg16';

/** The Keras applications whose architecture we define in code and whose weights Keras publishes. */
export type ApplicationId = 'vgg16_notop' | 'mobilenet_v2' | 'resnet50';

export interface ApplicationOptions {
  key: string;
  summary: ModelIdentity;
}

/** Builds `id`'s architecture as Keras does and loads its legacy Keras HDF5 weights file. */
export async function loadKerasApplication(
  tf: Tf,
  id: ApplicationId,
  weightsPath: string,
  options: ApplicationOptions,
): Promise<LoadedModel> {
  switch (id) {
    case 'vgg16_notop':
      return loadVgg16NoTop(tf, weightsPath, options);
    default:
      throw new Error(`${id}: not built yet`);
  }
}
