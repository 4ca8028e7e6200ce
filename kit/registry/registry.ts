/**
 * One process serving one service, as the registry knows it. Two instances are the same
 * instance when their ids are equal.
 */
export interface Instance {
  /** Unique per process and service, stable while the process runs. */
  readonly id: string;
  /** The name it was looked up by: the full protobuf service name. */
  readonly service: string;
  /** The base URL clients dial: `http://host:port`. */
  readonly address: string;
  /** What the process announced about itself (version, protocols); empty when nothing. */
  readonly meta: Readonly<Record<string, string>>;
}

/** What a process announces once it listens: the services it serves, and where. */
export interface Registration {
  /** Full protobuf names of the services it serves, such as `protomesh.user.v1.UserService`. */
  readonly services: readonly string[];
  /** The host that clients and health checks reach it at (not a wildcard address). */
  readonly host: string;
  readonly port: number;
}

/** Receives the whole healthy set of a service's instances, sorted by id. */
export type InstancesListener = (instances: readonly Instance[]) => void;

/** A watch on one service; close it when the instances are no longer needed. */
export interface Watcher {
  close(): void;
}

/**
 * Service discovery: a process registers the services it serves and deregisters them before
 * it drains; clients watch a service's healthy instances (kit/balance picks among them).
 */
export interface Registry {
  /** Announces this process's services; rejects if the registry would not take them. */
  register(registration: Registration): Promise<void>;
  /** Withdraws everything register announced; never rejects (a failure is logged). */
  deregister(): Promise<void>;
  /**
   * Follows the healthy instances of `service`. The listener gets what is known at once,
   * before watch returns (nothing if the registry has not answered yet), then the whole set
   * again on every change. While the registry is unreachable, the last known set stays.
   */
  watch(service: string, listener: InstancesListener): Watcher;
  /** The last known healthy instances of `service`: empty until a watch on it has an answer. */
  current(service: string): readonly Instance[];
  /** Stops every watch and releases connections; it does not deregister. */
  close(): void;
}

/** The base URL of a host and port, with brackets around an IPv6 address. */
export function baseUrl(host: string, port: number): string {
  return `http://${hostPort(host, port)}`;
}

/** `host:port`, with brackets around an IPv6 address. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Orders instances by id, the order every listener gets them in. */
export function byId(a: Instance, b: Instance): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** True when two instance sets (each sorted by id) differ in membership, address or meta. */
export function instancesDiffer(a: readonly Instance[], b: readonly Instance[]): boolean {
  if (a.length !== b.length) return true;
  return a.some((instance, i) => {
    const other = b[i];
    return (
      other === undefined ||
      instance.id !== other.id ||
      instance.address !== other.address ||
      !sameRecord(instance.meta, other.meta)
    );
  });
}

function sameRecord(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}
