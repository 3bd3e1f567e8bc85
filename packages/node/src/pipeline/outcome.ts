/** The completion outcome of a failed request or connection. */
export function outcomeOf(error: Error): string {
  switch ((error as { code?: string }).code) {
    case 'EGRESS_ERR_TIMEOUT':
      return 'timeout';
    case 'EGRESS_ERR_TLS':
      return 'tls';
    case 'EGRESS_ERR_DENIED':
      return 'denied';
    case 'EGRESS_ERR_CIRCUIT_OPEN':
      return 'circuit_open';
    default:
      return 'error';
  }
}

/** `error.type` of a completion event: the error's code, else its name. */
export function errorType(error: unknown): string {
  const e = error as { code?: unknown; name?: unknown } | undefined;
  return typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'Error';
}
