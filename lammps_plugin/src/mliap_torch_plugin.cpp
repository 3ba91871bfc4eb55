/* mliap_torch LAMMPS plugin entry point: registers pair style mliap/torch (`plugin load <this .so>`). */
#include "lammpsplugin.h"
#include "version.h"

#include "pair_mliap_torch.h"

using namespace LAMMPS_NS;

static Pair *mliap_torch_creator(LAMMPS *lmp)
{
  return new mliap_torch::PairMLIAPTorch(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  plugin.version = LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "mliap/torch";
  plugin.info = "mliap_torch models (SNAP bispectrum + libtorch head) without Python";
  plugin.author = "mliap_torch developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &mliap_torch_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
