/* mliap_torch LAMMPS plugin: the per-element energy heads of an mliap_torch model, in libtorch.
 *
 * A head maps the bispectrum B_i (natoms, K) and the element index s_i (natoms,) of each atom to its
 * energy E_i (eV) and dE_i/dB_i (natoms, K), the "betas" that LAMMPS' SNA turns into forces.
 * The arithmetic mirrors mliap_torch/models/heads.py operation by operation (same ATen kernels), so
 * energies agree with the Python model to rounding. */
#ifndef MLIAP_TORCH_TORCH_HEAD_H
#define MLIAP_TORCH_TORCH_HEAD_H

#include <ATen/core/ivalue.h>
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace mliap_torch {

class TorchHead {
 public:
  /* Built from the "head" entry of a plugin model file (a dict written by
   * mliap_torch/export/plugin_files.py); throws std::runtime_error naming the bad field. */
  TorchHead(const c10::impl::GenericDict &settings, int num_elements, int num_descriptors);

  const std::string &kind() const { return kind_; }

  /* True when dE/dB does not depend on B (linear head): betas need no bispectrum. */
  bool linear() const { return kind_ == "linear"; }

  /* Per-atom energies E (natoms,) eV and betas dE/dB (natoms, K), both float64 contiguous.
   * B: (natoms, K) float64; species: (natoms,) int64 element indices. Linear and quadratic heads give
   * the betas in closed form (β + Q·B), the MLP by autograd. */
  std::pair<at::Tensor, at::Tensor> energies_and_betas(const at::Tensor &B, const at::Tensor &species) const;

  /* Betas of a linear head without B: weight[species] (natoms, K). */
  at::Tensor linear_betas(const at::Tensor &species) const;

 private:
  at::Tensor mlp_energies(const at::Tensor &B, const at::Tensor &species) const;
  at::Tensor activate(const at::Tensor &x) const;

  std::string kind_;
  at::Tensor bias_, weight_;                         // linear / quadratic
  std::vector<at::Tensor> quadratic_matrix_;         // per element the symmetric (K, K) Q: E = ... + ½ B·Q·B
  at::Tensor shift_, scale_, offset_, linear_term_;  // mlp
  std::string activation_;
  std::vector<std::vector<std::pair<at::Tensor, at::Tensor>>> layers_;  // per element: (weight, bias)
};

/* A model file's top-level dict, read from the bytes of a torch.save archive. */
c10::impl::GenericDict read_model_dict(const std::vector<char> &bytes);

/* dict[key] with a clear error when it is missing. */
c10::IValue require(const c10::impl::GenericDict &dict, const std::string &key, const std::string &where);

/* A float64 contiguous tensor from dict[key], checked to have `numel` elements (numel < 0: any). */
at::Tensor require_tensor(const c10::impl::GenericDict &dict, const std::string &key, const std::string &where,
                          int64_t numel = -1);

}  // namespace mliap_torch

#endif
