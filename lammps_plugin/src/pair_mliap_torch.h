/* mliap_torch LAMMPS plugin: pair style mliap/torch.
 *
 *   plugin load mliap_torch_plugin.so
 *   pair_style mliap/torch model.plugin.pt
 *   pair_coeff * * <element of type 1> <element of type 2> ...   (NULL: type not handled here)
 *
 * Bispectrum models: LAMMPS' own SNA class (ML-SNAP) computes B_i and, from the betas dE_i/dB_i,
 * the forces exactly as pair_style snap does; the mliap_torch head (linear, quadratic, MLP) runs in
 * libtorch between the two passes. Needs newton pair on and a full neighbor list (as snap). */
#ifndef MLIAP_TORCH_PAIR_MLIAP_TORCH_H
#define MLIAP_TORCH_PAIR_MLIAP_TORCH_H

#include "pair.h"

#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {
class SNA;
}

namespace mliap_torch {
class TorchHead;

class PairMLIAPTorch : public LAMMPS_NS::Pair {
 public:
  explicit PairMLIAPTorch(LAMMPS_NS::LAMMPS *lmp);
  ~PairMLIAPTorch() override;
  void compute(int eflag, int vflag) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int i, int j) override;
  double memory_usage() override;

 private:
  void allocate();
  void read_model(const std::string &path);
  int gather_neighbors(int i);  // fills the SNA short lists of atom i; returns their number
  void compute_bispectrum();

  std::string model_path;
  std::vector<std::string> model_elements;
  std::vector<double> radelem, wjelem, sinnerelem, dinnerelem;
  double rcutfac = 0.0, rfac0 = 0.0, rmin0 = 0.0;
  int twojmax = 0, switchflag = 1, bzeroflag = 1, bnormflag = 0, chemflag = 0, wselfallflag = 0;
  int switchinnerflag = 0;
  int ncoeff = 0;
  LAMMPS_NS::SNA *snaptr = nullptr;
  std::unique_ptr<TorchHead> head;
  std::vector<double> bispectrum;  // (inum, ncoeff)
  std::vector<int64_t> species;    // (inum,) model element index of each listed atom
};

}  // namespace mliap_torch

#endif
