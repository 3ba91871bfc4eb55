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

  /* Per-atom features x (natoms, F) for the extrapolation grade, as Head.grade_features in
   * mliap_torch/models/heads.py: linear [1, B]; quadratic [1, B, quadratic products in .snapcoeff order];
   * MLP [1, last hidden layer of the atom's element network (, standardised B with the linear term)]. */
  at::Tensor grade_features(const at::Tensor &B, const at::Tensor &species) const;

  /* F of grade_features. */
  int64_t num_grade_features() const;

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

/* The active set of a model (mliap_torch/uncertainty/active_set.py): per element e the (F, r_e) matrix M_e,
 * and the extrapolation grade gamma_i = max_k |x_i . M_e|_k of atoms with features x_i (natoms, F). */
class ActiveSet {
 public:
  /* Built from the "active_set" entry of a plugin model file (version 2); throws std::runtime_error
   * naming the bad field. */
  ActiveSet(const c10::impl::GenericDict &settings, int num_elements, int64_t num_features);

  /* gamma (natoms,) float64 contiguous; inf for atoms of an element without training atoms (r_e = 0). */
  at::Tensor grades(const at::Tensor &features, const at::Tensor &species) const;

 private:
  std::vector<at::Tensor> inverse_;  // per element (F, r_e)
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
