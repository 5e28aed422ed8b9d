// The load-balancing policies by name: one module each, a Picker per cluster (see picker.ts for the contract).

import type { LoadBalancing } from '../../../state/services';
import { leastRequest } from './least-request';
import { maglev } from './maglev';
import { peakEwma } from './peak-ewma';
import type { Picker } from './picker';
import { randomPick } from './random';
import { ringHash } from './ring-hash';
import { roundRobin } from './round-robin';

export type { PickContext, Picker } from './picker';

/** Istio's default is LEAST_REQUEST. */
export function pickerFor(lb: LoadBalancing | undefined): Picker {
  switch (lb?.kind ?? 'least_request') {
    case 'round_robin':
      return roundRobin();
    case 'random':
      return randomPick();
    case 'peak_ewma':
      return peakEwma();
    case 'ring_hash':
      return ringHash((lb as { minRingSize?: number } | undefined)?.minRingSize);
    case 'maglev':
      return maglev((lb as { tableSize?: number } | undefined)?.tableSize);
    default:
      return leastRequest();
  }
}
