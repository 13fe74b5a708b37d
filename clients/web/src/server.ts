// Where the app's server is and how to reach it: its own origin by default (the page is served
// by hearken), or `?server=URL` for a page served elsewhere (that origin must then be on the
// server's --cors-origins).

import { createClient, type Client, ConnectError, Code } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Speech } from "./gen/hearken/speech/v1/speech_pb";

export type SpeechClient = Client<typeof Speech>;

/** The server's base URL, without a trailing slash. */
export function serverUrl(): string {
  const given = new URLSearchParams(location.search).get("server");
  return (given ?? location.origin).replace(/\/+$/, "");
}

/** grpc-web to the speech service (the gateway port routes it; so does the gRPC port). */
export function speechClient(): SpeechClient {
  return createClient(Speech, createGrpcWebTransport({ baseUrl: serverUrl() }));
}

/** Headers carrying the API key, when one is given. */
export function authHeaders(apiKey: string): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

/** A failed call in words a user can act on. */
export function describeRpcError(error: unknown): string {
  const e = ConnectError.from(error);
  switch (e.code) {
    case Code.Unauthenticated:
      return `The server needs a valid API key: ${e.rawMessage}`;
    case Code.ResourceExhausted:
      return `The server is busy or over a limit: ${e.rawMessage}`;
    case Code.PermissionDenied:
      return `The server refused this page: ${e.rawMessage}`;
    case Code.Unavailable:
    case Code.Unknown:
      return `Could not reach the server at ${serverUrl()} (${e.rawMessage}). A page on another origin needs that origin in the server's --cors-origins.`;
    case Code.Canceled:
      return "Cancelled.";
    default:
      return `${Code[e.code]}: ${e.rawMessage}`;
  }
}
