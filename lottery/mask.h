// The lottery-ticket mask. Mask is defined in fl/mask.h because the aggregator (fl/) needs it
// and fl/ must not depend on lottery/; this header re-exports it so ticket code can include
// the name it expects. See fl/mask.h for the contract.
#ifndef LFL_LOTTERY_MASK_H_
#define LFL_LOTTERY_MASK_H_

#include "fl/mask.h"

#endif  // LFL_LOTTERY_MASK_H_
