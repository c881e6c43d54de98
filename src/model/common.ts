/**
 * @module model/common
 * Schema pieces shared by several entities (ids, labels, match conditions, timeouts).
 */
import { Type, type Static, type SchemaOptions, type TUnsafe } from '@sinclair/typebox';

/** A string enum as a plain JSON Schema `enum` (clearer validation errors than a union of literals). */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export const Id = Type.String({
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$',
  description: 'Identifier: letters, digits, ".", "_" or "-", at most 128 characters, starting with a letter or digit.',
});

export const Labels = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 256 }), {
  description: 'Free-form key/value labels, used to filter and group entities.',
});

export const Description = Type.String({ maxLength: 1024, description: 'Human-readable description.' });

export const HttpMethod = StringEnum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'],
  { description: 'An HTTP method, upper case.' },
);
export type HttpMethod = Static<typeof HttpMethod>;

/** A condition on the request beyond host, path and method; all conditions of a route must hold. */
export const MatchCondition = Type.Object(
  {
    in: StringEnum(['header', 'query', 'cookie'], {
      description: 'Where the value comes from: a request header, a query argument or a cookie.',
    }),
    name: Type.String({ minLength: 1, maxLength: 256, description: 'Header, query argument or cookie name (headers are case-insensitive).' }),
    op: StringEnum(['equals', 'notEquals', 'regex', 'exists', 'notExists', 'in', 'notIn'],
      { default: 'equals', description: 'Comparison: equals, notEquals, regex, exists, notExists, in (one of values), notIn.' },
    ),
    value: Type.Optional(Type.String({ maxLength: 4096, description: 'The value to compare with (equals, notEquals) or the regular expression (regex).' })),
    values: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 1024, description: 'The list of values for in and notIn.' })),
  },
  { additionalProperties: false, description: 'A condition on a header, query argument or cookie.' },
);
export type MatchCondition = Static<typeof MatchCondition>;

export const Timeouts = Type.Object(
  {
    connect: Type.Integer({ minimum: 1, maximum: 3_600_000, default: 6000, description: 'Milliseconds to establish a connection to a node.' }),
    send: Type.Integer({ minimum: 1, maximum: 3_600_000, default: 60000, description: 'Milliseconds the request body may stall while being sent to the node.' }),
    read: Type.Integer({ minimum: 1, maximum: 3_600_000, default: 60000, description: 'Milliseconds to wait for the response headers, and at most between two chunks of the response body.' }),
  },
  { additionalProperties: false, description: 'Upstream timeouts in milliseconds.' },
);
export type Timeouts = Static<typeof Timeouts>;

/** Plugin configuration keyed by plugin name; each value is checked against that plugin's own schema. */
export const PluginMap = Type.Record(Type.String({ pattern: '^[a-z][a-z0-9-]*$' }), Type.Record(Type.String(), Type.Unknown()), {
  description: 'Plugins keyed by their kebab-case name; each value is checked against that plugin\'s schema.',
});
export type PluginMap = Static<typeof PluginMap>;
