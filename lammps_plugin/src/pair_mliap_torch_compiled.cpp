/* mliap_torch LAMMPS plugin: models compiled ahead of time (torch.export + AOTInductor, a .pt2 package,
 * written by mliap_torch/export/compiled.py).
 *
 * The compiled graph maps the pair list to per-atom energies and dE/dr_ij:
 *   inputs  rij (P, 3) Å, pair_i (P,) in [0, n), pair_j (P,) in [0, M), species (M,), center_species (n,)
 *   outputs energies (n,) eV, dE_drij (P, 3) eV/Å
 * with n the atoms of the neighbor list, M every atom LAMMPS holds (local and ghost) and pairs beyond
 * the model's cutoffs contributing nothing. Forces and virial follow from dE/dr_ij as in ML-IAP
 * (r_ij = x_j - x_i: F_i += dE/dr_ij, F_j -= dE/dr_ij), so ghost forces go back to their owners through
 * LAMMPS' reverse communication (newton on). */
#include "pair_mliap_torch.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "neigh_list.h"

#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include "torch_head.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

using namespace LAMMPS_NS;

namespace mliap_torch {

namespace {

const char *const COMPILED_FORMAT = "mliap_torch.lammps_plugin.compiled";
const char *const COMPILED_VERSION = "1";

std::string metadata_field(const std::unordered_map<std::string, std::string> &metadata, const std::string &key,
                           const std::string &where)
{
  auto it = metadata.find("mliap_torch." + key);
  if (it == metadata.end())
    throw std::runtime_error(where + ": metadata field 'mliap_torch." + key + "' is missing (not a model compiled "
                             "by mliap_torch)");
  return it->second;
}

}  // namespace

void PairMLIAPTorch::read_compiled_model()
{
  const std::string &where = model_path;
  try {
    compiled = std::make_unique<torch::inductor::AOTIModelPackageLoader>(model_path);
    const auto metadata = compiled->get_metadata();
    if (metadata_field(metadata, "format", where) != COMPILED_FORMAT)
      throw std::runtime_error(where + ": not an mliap_torch compiled model (metadata 'mliap_torch.format')");
    const std::string version = metadata_field(metadata, "version", where);
    if (version != COMPILED_VERSION)
      throw std::runtime_error(where + ": compiled model version " + version + ", this plugin reads version " +
                               COMPILED_VERSION + " (export the model again, or rebuild the plugin)");
    model_elements.clear();
    std::istringstream elements(metadata_field(metadata, "elements", where));
    for (std::string e; elements >> e;) model_elements.push_back(e);
    const size_t n = model_elements.size();
    cutoffs.clear();
    if (metadata.count("mliap_torch.weights") && metadata.at("mliap_torch.weights") == "separate") {
      // the package holds an architecture; this model's tensors (and cutoffs) are in <stem>.weights.pt
      const std::string weights = model_path.substr(0, model_path.size() - 4) + ".weights.pt";
      std::unordered_map<std::string, at::Tensor> values;
      for (const auto &item : read_model_dict(read_file_on_rank0(weights))) {
        const std::string name = item.key().toStringRef();
        at::Tensor value = item.value().toTensor().contiguous();
        if (name == "mliap_torch.cutoffs") {
          at::Tensor c = value.to(at::kDouble);
          cutoffs.assign(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
        } else {
          values[name] = value;
        }
      }
      compiled->load_constants(values, false, true);
    } else {
      std::istringstream values(metadata_field(metadata, "cutoffs", where));
      for (double c; values >> c;) cutoffs.push_back(c);
    }
    if (n == 0 || cutoffs.size() != n * n)
      throw std::runtime_error(where + ": " + std::to_string(n) + " elements and " + std::to_string(cutoffs.size()) +
                               " cutoffs (expected one per element pair)");
    const std::string dtype = metadata_field(metadata, "dtype", where);
    if (dtype != "float64" && dtype != "float32")
      throw std::runtime_error(where + ": compiled for dtype " + dtype + " (this plugin runs float64 and float32)");
    compiled_float32 = dtype == "float32";
    compiled_cuda = metadata.count("mliap_torch.device") && metadata.at("mliap_torch.device") == "cuda";
    compiled_min_atoms = metadata.count("mliap_torch.min_atoms") ? std::stoi(metadata.at("mliap_torch.min_atoms")) : 0;
    compiled_min_pairs = metadata.count("mliap_torch.min_pairs") ? std::stoi(metadata.at("mliap_torch.min_pairs")) : 0;
  } catch (const std::exception &exc) {
    compiled.reset();
    error->all(FLERR, "pair_style mliap/torch: cannot load compiled model {}: {}", model_path, exc.what());
  }
}

void PairMLIAPTorch::compute_compiled(int eflag, int vflag)
{
  double **x = atom->x;
  const int *type = atom->type;
  const int nall = atom->nlocal + atom->nghost;
  const int inum = list->inum;
  if (inum == 0) return;

  // the pair list of the neighbor list's atoms, within each element pair's cutoff
  pair_rij.clear();
  pair_i.clear();
  pair_j.clear();
  for (int ii = 0; ii < inum; ii++) {
    const int i = list->ilist[ii];
    const int itype = type[i];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double delx = x[j][0] - x[i][0];
      const double dely = x[j][1] - x[i][1];
      const double delz = x[j][2] - x[i][2];
      const double rsq = delx * delx + dely * dely + delz * delz;
      if (rsq < cutsq[itype][type[j]] && rsq > 1e-20) {
        pair_rij.insert(pair_rij.end(), {delx, dely, delz});
        pair_i.push_back(ii);
        pair_j.push_back(j);
      }
    }
  }
  const int64_t npairs = static_cast<int64_t>(pair_i.size());
  all_species.resize(nall);
  for (int k = 0; k < nall; k++) all_species[k] = std::max(map[type[k]], 0);

  // shapes below the compiled graph's minimum sizes are padded: extra atoms of element 0 and pairs far
  // beyond every cutoff (they contribute nothing; their outputs are dropped)
  const int64_t n_run = std::max<int64_t>(inum, compiled_min_atoms);
  const int64_t p_run = std::max<int64_t>(npairs, compiled_min_pairs);
  const int64_t m_run = std::max<int64_t>(nall, compiled_min_atoms);
  const double far = 10.0 * (*std::max_element(cutoffs.begin(), cutoffs.end())) + 1.0;
  species.resize(n_run, 0);
  all_species.resize(m_run, 0);
  pair_i.resize(p_run, 0);
  pair_j.resize(p_run, 0);
  for (int64_t p = npairs; p < p_run; p++) pair_rij.insert(pair_rij.end(), {far, 0.0, 0.0});

  std::vector<at::Tensor> outputs;
  try {
    const auto dbl = at::TensorOptions().dtype(at::kDouble);
    const auto lng = at::TensorOptions().dtype(at::kLong);
    std::vector<at::Tensor> inputs = {at::from_blob(pair_rij.data(), {p_run, 3}, dbl),
                                      at::from_blob(pair_i.data(), {p_run}, lng),
                                      at::from_blob(pair_j.data(), {p_run}, lng),
                                      at::from_blob(all_species.data(), {m_run}, lng),
                                      at::from_blob(species.data(), {n_run}, lng)};
    if (compiled_float32) inputs[0] = inputs[0].to(at::kFloat);
    if (compiled_cuda)
      for (auto &t : inputs) t = t.to(at::kCUDA);
    outputs = compiled->run(inputs);
    for (auto &t : outputs) t = t.to(at::kCPU, at::kDouble).contiguous();
  } catch (const std::exception &exc) {
    error->one(FLERR, "pair_style mliap/torch: the compiled model {} failed: {}", model_path, exc.what());
  }
  const double *energies = outputs.at(0).data_ptr<double>();
  const double *fij = outputs.at(1).data_ptr<double>();

  for (int64_t p = 0; p < npairs; p++)
    add_pair_force(list->ilist[pair_i[p]], static_cast<int>(pair_j[p]), fij + 3 * p, pair_rij.data() + 3 * p, vflag);
  if (eflag)
    for (int ii = 0; ii < inum; ii++) ev_tally_full(list->ilist[ii], 2.0 * energies[ii], 0.0, 0.0, 0.0, 0.0, 0.0);
}

}  // namespace mliap_torch
