// PLACEHOLDER written by the fetch/undici engineer so install() compiles until the http patch lands.
// The owner of patches/http.ts replaces this file entirely.
import type { EgressGuard } from '../egress-guard.js';

export function patchHttp(_current: () => EgressGuard | undefined): () => void {
  return () => {};
}
