import * as assert from 'node:assert/strict';
import { UserFacingError } from '../../src/engine/errors';

/** Rejects with a message for the user (a UserFacingError) that matches every pattern. */
export async function rejectsWith(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<UserFacingError> {
  let caught: unknown;
  await assert.rejects(promise, (error) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof UserFacingError, `expected a message for the user, got ${String(caught)}`);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

/** Every value finite, and not all the same: a real activation map, not a dead or broken one. */
export function assertFiniteAndVaried(name: string, data: Float32Array): void {
  let min = Infinity;
  let max = -Infinity;
  for (const v of data) {
    assert.ok(Number.isFinite(v), `${name} has a non-finite value`);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  assert.ok(max > min, `${name} is constant (${min})`);
}
