/* mliap_torch LAMMPS plugin: pair style mliap/torch.
 *
 *   plugin load mliap_torch_plugin.so
 *   pair_style mliap/torch model.plugin.pt      (or model.plugin.pt2)
 *   pair_coeff * * <element of type 1> <element of type 2> ...   (NULL: type not handled here)
 *
 * Two kinds of model file, chosen by the file name:
 * - `.pt` (bispectrum models): LAMMPS' own SNA class (ML-SNAP) computes B_i and, from the betas
 *   dE_i/dB_i, the forces exactly as pair_style snap does; the mliap_torch head (linear, quadratic,
 *   MLP) runs in libtorch between the two passes (pair_mliap_torch_snap.cpp);
 * - `.pt2` (ACE models): the whole descriptor + head compiled ahead of time by torch.export and
 *   AOTInductor, run on the pair list with its forces by autograd inside the compiled graph
 *   (pair_mliap_torch_compiled.cpp); its weights either inside or in `<stem>.weights.pt` next to it.
 * Needs newton pair on and a full neighbor list (as snap).
 *
 * Extrapolation grade: a `.pt` model written with an active set (model file version 2) gives per-atom
 * gamma to fix pair, which asks for it on its steps only (as pair_style pace/extrapolation does):
 *   fix g all pair 10 mliap/torch gamma 1      (1: set gamma_flag, so gamma is computed on those steps)
 *   compute gmax all reduce max f_g
 *   variable gmax equal c_gmax
 *   fix stop all halt 10 v_gmax > 5 error soft
 * Steps without the request compute no gamma. */
#ifndef MLIAP_TORCH_PAIR_MLIAP_TORCH_H
#define MLIAP_TORCH_PAIR_MLIAP_TORCH_H

#include "pair.h"

#include "sna_passes.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {
class SNA;
}
namespace torch::inductor {
class AOTIModelPackageLoader;
}

namespace at {
class Tensor;
}

namespace mliap_torch {
class TorchHead;
class ActiveSet;

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
  void *extract(const char *name, int &dim) override;                 // "gamma_flag" (fix pair's trigger)
  void *extract_peratom(const char *name, int &ncol) override;        // "gamma" (nlocal,)

 private:
  void allocate();
  std::vector<char> read_file_on_rank0(const std::string &path);
  // one element per atom of the list (model element index), from LAMMPS types
  void list_species();
  // F_i += fij, F_j -= fij and (vflag) the virial of the pair, for fij = dE/dr_ij and rij = x_j - x_i
  void add_pair_force(int i, int j, const double *fij, const double *rij, int vflag);

  // bispectrum models (pair_mliap_torch_snap.cpp)
  void read_snap_model(const std::vector<char> &bytes);
  int gather_neighbors(int i);  // fills the SNA short lists of atom i; returns their number
  void compute_snap(int eflag, int vflag);
  void compute_snap_linear(int vflag);
  void compute_snap_chunks(int eflag, int vflag);
  void add_snap_forces(int i, int ninside, const double *beta, int vflag);
  // gamma of the chunk's atoms (list positions first .. first + n - 1) from their B (n, K)
  void grade_chunk(const at::Tensor &B, const at::Tensor &chunk_species, int first, int n);

  // compiled models (pair_mliap_torch_compiled.cpp)
  void read_compiled_model();
  void compute_compiled(int eflag, int vflag);

  std::string model_path;
  std::vector<std::string> model_elements;
  std::vector<double> cutoffs;     // (nelements, nelements) per element pair, Å
  std::vector<int64_t> species;    // (inum,) model element index of each listed atom

  // bispectrum models
  std::vector<double> radelem, wjelem, sinnerelem, dinnerelem;
  double rcutfac = 0.0, rfac0 = 0.0, rmin0 = 0.0;
  int twojmax = 0, switchflag = 1, bzeroflag = 1, bnormflag = 0, chemflag = 0, wselfallflag = 0;
  int switchinnerflag = 0;
  int ncoeff = 0;
  LAMMPS_NS::SNA *snaptr = nullptr;
  std::unique_ptr<TorchHead> head;
  static constexpr int CHUNK_ATOMS = 256;  // atoms per head call when B is needed
  std::vector<double> bispectrum;         // (CHUNK_ATOMS, ncoeff) B_i of a chunk
  SNAPasses sna_passes;                   // the two SNA passes of a chunk

  // extrapolation grade (bispectrum models with an active set)
  std::unique_ptr<ActiveSet> active_set;
  int gamma_flag = 0;         // set by fix pair on the steps it reads gamma, cleared after
  double *gamma = nullptr;    // (gamma_nmax,) per local atom, valid after a compute with gamma_flag
  int gamma_nmax = 0;

  // compiled models
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> compiled;
  bool compiled_cuda = false, compiled_float32 = false;
  int compiled_min_atoms = 0, compiled_min_pairs = 0;
  std::vector<double> pair_rij;                            // (npairs, 3)
  std::vector<int64_t> pair_i, pair_j, all_species;        // (npairs,), (npairs,), (nlocal + nghost,)
};

}  // namespace mliap_torch

#endif
