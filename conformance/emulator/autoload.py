"""Importing this module registers the emulated device, the way a vendor's package registers its own.

The worked example of running the suite on an out-of-tree backend::

    python -m pytest --backend conformance.emulator.autoload --device emu

(``--device emu`` alone loads it too; this module is the shape a vendor's
package has: ``import torch_npu`` registers ``npu``.)
"""

from . import load

load()
