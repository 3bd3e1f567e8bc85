/** Escapes text for HTML and SVG: everything in a report comes from logs, which an attacker can write to. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
