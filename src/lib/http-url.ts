// Whether a string is an absolute http: or https: URL (for settings that
// name an endpoint the proxy dials, such as a trace collector).
export function isHttpUrl(s: string): boolean {
  if (!URL.canParse(s)) return false;
  const { protocol } = new URL(s);
  return protocol === 'http:' || protocol === 'https:';
}
