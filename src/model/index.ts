/**
 * @module model
 * Entity schemas: one definition serves validation, types and (later) the admin API's OpenAPI document.
 */
export * from './common.js';
export * from './upstream.js';
export * from './route.js';
export * from './service.js';
export * from './consumer.js';
export * from './certificate.js';
export * from './declarative.js';
export * from './validate.js';
