/**
 * Dispatch options already decided by a GuardedDispatcher. Nested dispatchers (Agent → Pool → Client)
 * pass the same options object down, so the patched DispatcherBase decides each request once; a redirect
 * hop builds new options, so it is decided again.
 */
export const decidedRequests = new WeakSet<object>();
