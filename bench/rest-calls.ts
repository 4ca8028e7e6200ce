import { fetchOnce } from "./wrk.ts";

/** Registers a user and logs them in over the gateway's REST routes. */
export async function signUp(gatewayUrl: string): Promise<{ id: string; accessToken: string }> {
  const account = { email: `bench-${process.pid}@example.com`, password: "bench-password-1" };
  const { id } = (await restCall(gatewayUrl, "/v1/auth/register", "", {
    ...account,
    displayName: "Bench",
  })) as { id: string };
  const { accessToken } = (await restCall(gatewayUrl, "/v1/auth/login", "", account)) as {
    accessToken: string;
  };
  return { id, accessToken };
}

/** POSTs a JSON body to a REST route of the gateway; the answer's JSON, or an error. */
export async function restCall(
  gatewayUrl: string,
  path: string,
  authorization: string,
  body: unknown,
): Promise<unknown> {
  const answer = await fetchOnce({
    url: gatewayUrl + path,
    postBody: JSON.stringify(body),
    ...(authorization === "" ? {} : { headers: { authorization } }),
  });
  if (answer.status !== 200) {
    throw new Error(`POST ${path} answered ${answer.status} ${answer.text}`);
  }
  return answer.body;
}
