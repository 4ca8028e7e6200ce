import {
  type UserRegistered,
  UserRegisteredSchema,
} from "../../gen/protomesh/user/v1/events_pb.ts";
import type { Jobs } from "../../kit/jobs/jobs.ts";
import type { Mail, Mailer } from "../../kit/mail/mailer.ts";
import { userStreams } from "./account-rpcs.ts";

/** The verification mail for a new account. */
export function verificationMail(event: UserRegistered, publicUrl: string): Mail {
  const expires = event.expireTime
    ? new Date(Number(event.expireTime.seconds) * 1000).toISOString()
    : "in 24 hours";
  const endpoint = new URL("/v1/auth/verify-email", publicUrl).toString();
  return {
    to: event.email,
    subject: "Verify your protomesh account",
    text: [
      `Hello ${event.displayName},`,
      "",
      "Confirm your email address with this verification token:",
      "",
      `    ${event.verificationToken}`,
      "",
      "for example:",
      "",
      `    curl -X POST ${endpoint} -H 'Content-Type: application/json' -d '{"token":"${event.verificationToken}"}'`,
      "",
      `The token can be used once and expires ${expires}.`,
      "If you did not register, ignore this mail.",
    ].join("\n"),
  };
}

/** Sends the verification mail of every new account (consumer group "verification-mail"). */
export function consumeVerificationMail(jobs: Jobs, mailer: Mailer, publicUrl: string): void {
  jobs.consume({
    stream: userStreams.registered,
    group: "verification-mail",
    schema: UserRegisteredSchema,
    // Sent inside the consumer's transaction: if the commit fails after the server accepted the
    // mail, the retry sends it again (at least once), never zero times.
    handle: (event) => mailer.send(verificationMail(event, publicUrl)),
  });
}
