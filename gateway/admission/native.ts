import { type DescService, hasOption } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { http } from "../../gen/google/api/annotations_pb.ts";
import type { Authenticate } from "../../kit/auth/auth-interceptor.ts";
import { methodPath } from "../../kit/call-policy.ts";
import {
  forwardedHeadersOf,
  type GatewayRequest,
  type GatewayResponse,
  headerReader,
  setHeaders,
} from "../exchange.ts";
import { addressOf, admit, clientKeyOf, type RateLimits } from "./rate-limit.ts";

/** What the admission of native calls needs. */
export interface NativeAdmissionOptions {
  readonly services: readonly DescService[];
  readonly authenticate: Authenticate;
  readonly rateLimits: RateLimits;
  /** How many proxies in front of the gateway append to X-Forwarded-For. */
  readonly trustedProxies: number;
}

/**
 * Admits a native call to `path` ("/pkg.Service/Method") or throws its refusal; sets the
 * rate-limit headers on the response.
 */
export type AdmitNative = (
  req: GatewayRequest,
  res: GatewayResponse,
  path: string,
) => Promise<void>;

/**
 * Creates the admission of native Connect, gRPC and gRPC-Web calls. The gateway serves,
 * natively too, the RPCs the contract gives a google.api.http rule; one without
 * (UserService.ListRevocations) is for the mesh's own processes only, Unimplemented here. A
 * call is admitted as its REST form is: its token is checked against the RPC's auth policy
 * before anything reaches the service (which checks it again), and it is limited per verified
 * subject, else per client address.
 */
export function createNativeAdmission(options: NativeAdmissionOptions): AdmitNative {
  const { authenticate, rateLimits, trustedProxies } = options;
  const methods = new Map(
    options.services.flatMap((s) =>
      s.methods.filter((m) => hasOption(m, http)).map((m) => [methodPath(m), m]),
    ),
  );
  return async (req, res, path) => {
    const method = methods.get(path);
    if (method === undefined) {
      throw new ConnectError(`${path} is not served by the gateway`, Code.Unimplemented);
    }
    const identity = await authenticate(method, headerReader(forwardedHeadersOf(req)));
    const client = clientKeyOf(identity?.userId, addressOf(req, trustedProxies));
    setHeaders(res, await admit(rateLimits.take(client, method)));
  };
}
