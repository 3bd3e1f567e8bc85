// PLACEHOLDER written by the fetch/undici engineer so install() compiles until the http2 patch lands.
// The owner of patches/http2.ts replaces this file entirely.
import type { EgressGuard } from '../egress-guard.js';

export function patchHttp2(_current: () => EgressGuard | undefined): () => void {
  return () => {};
}
