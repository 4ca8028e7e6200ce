import { byId, type Instance, type Registry } from "./registry.ts";

/** Where each service answers: one base URL, several comma-separated, or a list. */
export type StaticServices = Readonly<Record<string, string | readonly string[]>>;

/**
 * Creates the registry of a mesh on one machine (what `npm start` uses): the instances come
 * from configuration, such as the launcher's *_SERVICE_URL variables, keyed by full protobuf
 * service name. Registering is a no-op, and the sets never change.
 */
export function createStaticRegistry(services: StaticServices): Registry {
  const instances = new Map<string, readonly Instance[]>();
  for (const [service, urls] of Object.entries(services)) {
    const list = typeof urls === "string" ? urls.split(",") : urls;
    const set = list
      .map((url) => url.trim())
      .filter((url) => url !== "")
      .map((url): Instance => {
        const address = originOf(service, url);
        return { id: `${service}@${address}`, service, address, meta: {} };
      })
      .sort(byId);
    instances.set(service, Object.freeze(set));
  }
  const current = (service: string) => instances.get(service) ?? [];
  return {
    register: async () => {},
    deregister: async () => {},
    // The configuration is all there is to know: a service it does not name has no instance.
    watch(service, listener) {
      listener(current(service));
      return { close() {} };
    },
    current,
    close() {},
  };
}

function originOf(service: string, url: string): string {
  const parsed = URL.parse(url);
  if (parsed?.protocol !== "http:" && parsed?.protocol !== "https:") {
    throw new Error(`${service}: ${JSON.stringify(url)} is not an http(s):// base URL`);
  }
  return parsed.origin;
}
