import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { z } from "zod";
import type { Log } from "../log.ts";

/** Mail settings of a process that sends mail. */
export const mailConfigShape = {
  /** SMTP server, e.g. smtp://user:pass@mail.example.com:587; unset: .eml files in DATA_DIR/mail. */
  SMTP_URL: z.url({ protocol: /^smtps?$/ }).optional(),
  MAIL_FROM: z.string().default("protomesh <no-reply@protomesh.local>"),
};

/** One plain-text message. */
export interface Mail {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
}

/** Sends mail; resolves once the server accepted it (or the file is written). */
export interface Mailer {
  send(mail: Mail): Promise<void>;
  close(): void;
}

/**
 * Creates a mailer: SMTP through nodemailer when a URL is given, otherwise RFC 5322 `.eml`
 * files in `dir`, which any mail client opens. Timeouts are bounded so a dead server fails the
 * job (to be retried) instead of hanging it.
 */
export function createMailer(options: {
  readonly smtpUrl?: string | undefined;
  readonly dir: string;
  readonly from: string;
  readonly log: Log;
}): Mailer {
  if (options.smtpUrl) {
    const url = new URL(options.smtpUrl);
    const transport = nodemailer.createTransport({
      host: url.hostname,
      port: Number(url.port) || (url.protocol === "smtps:" ? 465 : 587),
      secure: url.protocol === "smtps:",
      ...(url.username
        ? {
            auth: {
              user: decodeURIComponent(url.username),
              pass: decodeURIComponent(url.password),
            },
          }
        : {}),
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    });
    return {
      async send(mail) {
        await transport.sendMail({ from: options.from, ...mail });
      },
      close: () => transport.close(),
    };
  }
  const files = nodemailer.createTransport({ streamTransport: true, buffer: true });
  return {
    async send(mail) {
      const info = await files.sendMail({ from: options.from, ...mail });
      await mkdir(options.dir, { recursive: true });
      const name = `${new Date().toISOString().replaceAll(":", "-")}-${info.messageId.replace(/[^\w.-]/g, "")}.eml`;
      await writeFile(join(options.dir, name), info.message as Buffer);
      options.log.info({ to: mail.to, file: name }, "mail written");
    },
    close: () => files.close(),
  };
}
