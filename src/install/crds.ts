// CustomResourceDefinitions of nodemesh's own kinds (group nodemesh.io). Gateway API and Istio CRDs are theirs
// to install; the control plane treats them as optional.

import { labels, type Manifest } from './manifest';

const percentage = { type: 'number', minimum: 0, maximum: 100, description: 'share of requests, 0-100 (default 100)' };
const duration = { type: 'string', pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$', description: 'a Go-style duration, e.g. 150ms or 2s' };

/** FaultInjection: named by an HTTPRoute `ExtensionRef` filter; delays or aborts a share of requests. */
export function faultInjectionCrd(): Manifest {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'faultinjections.nodemesh.io', labels: labels('crds') },
    spec: {
      group: 'nodemesh.io',
      names: { kind: 'FaultInjection', listKind: 'FaultInjectionList', plural: 'faultinjections', singular: 'faultinjection', categories: ['nodemesh'] },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'Delays or aborts a share of the requests of the HTTPRoute rules whose ExtensionRef filter names it.',
              properties: {
                spec: {
                  type: 'object',
                  properties: {
                    delay: {
                      type: 'object',
                      required: ['fixed'],
                      properties: { fixed: duration, percentage },
                    },
                    abort: {
                      type: 'object',
                      properties: {
                        httpStatus: { type: 'integer', minimum: 200, maximum: 599 },
                        grpcStatus: { type: 'integer', minimum: 0, maximum: 16 },
                        percentage,
                      },
                    },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
}

export function crdObjects(): Manifest[] {
  return [faultInjectionCrd()];
}
