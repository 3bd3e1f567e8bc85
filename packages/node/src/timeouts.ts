// The error for an elapsed limit is built in @egress-guard/policy, beside the decisions.
export { timeoutError } from '@egress-guard/policy';
