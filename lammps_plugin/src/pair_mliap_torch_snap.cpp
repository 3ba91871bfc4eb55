/* mliap_torch LAMMPS plugin: bispectrum models through LAMMPS' SNA with the head in libtorch.
 * The neighbor gathering and the force pass follow LAMMPS' PairSNAP::compute (src/ML-SNAP/pair_snap.cpp),
 * so a linear model costs what pair_style snap costs plus one small libtorch call per step. */
#include "pair_mliap_torch.h"

#include "torch_head.h"

#include "atom.h"
#include "error.h"
#include "neigh_list.h"
#include "sna.h"

#include <algorithm>
#include <stdexcept>

using namespace LAMMPS_NS;

namespace mliap_torch {

namespace {

const char *const FORMAT = "mliap_torch.lammps_plugin";
const int64_t VERSION = 1;
const int64_t VERSION_ACTIVE_SET = 2;  // version 1 + the optional "active_set" entry

std::vector<double> doubles(const c10::impl::GenericDict &dict, const std::string &key, const std::string &where,
                            int64_t n)
{
  at::Tensor t = require_tensor(dict, key, where, n);
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

int flag(const c10::impl::GenericDict &dict, const std::string &key, const std::string &where)
{
  c10::IValue v = require(dict, key, where);
  if (v.isBool()) return v.toBool() ? 1 : 0;
  return static_cast<int>(v.toInt());
}

}  // namespace

void PairMLIAPTorch::read_snap_model(const std::vector<char> &bytes)
{
  try {
    c10::impl::GenericDict model = read_model_dict(bytes);
    const std::string where = model_path;
    if (require(model, "format", where).toStringRef() != FORMAT)
      throw std::runtime_error(where + ": not an mliap_torch plugin model (field 'format')");
    const int64_t version = require(model, "version", where).toInt();
    if (version != VERSION && version != VERSION_ACTIVE_SET)
      throw std::runtime_error(where + ": model file version " + std::to_string(version) +
                               ", this plugin reads versions " + std::to_string(VERSION) + " and " +
                               std::to_string(VERSION_ACTIVE_SET) +
                               " (export the model again with this mliap_torch, or rebuild the plugin)");
    model_elements.clear();
    for (const c10::IValue &e : require(model, "elements", where).toList()) model_elements.push_back(e.toStringRef());
    const int64_t n = static_cast<int64_t>(model_elements.size());

    c10::impl::GenericDict d = require(model, "descriptor", where).toGenericDict();
    const std::string dwhere = where + ": descriptor";
    const std::string dtype = require(d, "type", dwhere).toStringRef();
    if (dtype != "bispectrum")
      throw std::runtime_error(dwhere + ": type '" + dtype + "' runs through a compiled model file (.pt2), not this "
                               "format");
    twojmax = static_cast<int>(require(d, "twojmax", dwhere).toInt());
    rcutfac = require(d, "rcutfac", dwhere).toDouble();
    rfac0 = require(d, "rfac0", dwhere).toDouble();
    rmin0 = require(d, "rmin0", dwhere).toDouble();
    radelem = doubles(d, "radelem", dwhere, n);
    wjelem = doubles(d, "wj", dwhere, n);
    switchflag = flag(d, "switchflag", dwhere);
    bzeroflag = flag(d, "bzeroflag", dwhere);
    bnormflag = flag(d, "bnormflag", dwhere);
    chemflag = flag(d, "chemflag", dwhere);
    wselfallflag = flag(d, "wselfallflag", dwhere);
    switchinnerflag = flag(d, "switchinnerflag", dwhere);
    if (switchinnerflag) {
      sinnerelem = doubles(d, "sinner", dwhere, n);
      dinnerelem = doubles(d, "dinner", dwhere, n);
    }
    cutoffs.assign(static_cast<size_t>(n * n), 0.0);
    for (int64_t a = 0; a < n; a++)
      for (int64_t b = 0; b < n; b++) cutoffs[a * n + b] = (radelem[a] + radelem[b]) * rcutfac;

    delete snaptr;
    snaptr = new SNA(lmp, rfac0, twojmax, rmin0, switchflag, bzeroflag, chemflag, bnormflag, wselfallflag,
                     static_cast<int>(n), switchinnerflag);
    sna_passes = SNAPasses();
    ncoeff = snaptr->ncoeff;
    const int64_t declared = require(model, "num_descriptors", where).toInt();
    if (declared != ncoeff)
      throw std::runtime_error(where + ": the model has " + std::to_string(declared) +
                               " descriptors, LAMMPS' SNA gives " + std::to_string(ncoeff) + " for these settings");
    head = std::make_unique<TorchHead>(require(model, "head", where).toGenericDict(), static_cast<int>(n), ncoeff);
    if (version == VERSION_ACTIVE_SET && model.contains(c10::IValue("active_set")))
      active_set = std::make_unique<ActiveSet>(require(model, "active_set", where).toGenericDict(),
                                               static_cast<int>(n), head->num_grade_features());
  } catch (const std::exception &exc) {
    error->all(FLERR, "pair_style mliap/torch: {}", exc.what());
  }
}

int PairMLIAPTorch::gather_neighbors(int i)
{
  double **x = atom->x;
  const int *type = atom->type;
  const int itype = type[i];
  const int ielem = map[itype];
  const double radi = radelem[ielem];
  const int *jlist = list->firstneigh[i];
  const int jnum = list->numneigh[i];
  snaptr->grow_rij(jnum);
  int ninside = 0;
  for (int jj = 0; jj < jnum; jj++) {
    const int j = jlist[jj] & NEIGHMASK;
    const double delx = x[j][0] - x[i][0];
    const double dely = x[j][1] - x[i][1];
    const double delz = x[j][2] - x[i][2];
    const double rsq = delx * delx + dely * dely + delz * delz;
    const int jtype = type[j];
    const int jelem = map[jtype];
    if (rsq < cutsq[itype][jtype] && rsq > 1e-20) {
      snaptr->rij[ninside][0] = delx;
      snaptr->rij[ninside][1] = dely;
      snaptr->rij[ninside][2] = delz;
      snaptr->inside[ninside] = j;
      snaptr->wj[ninside] = wjelem[jelem];
      snaptr->rcutij[ninside] = (radi + radelem[jelem]) * rcutfac;
      if (switchinnerflag) {
        snaptr->sinnerij[ninside] = 0.5 * (sinnerelem[ielem] + sinnerelem[jelem]);
        snaptr->dinnerij[ninside] = 0.5 * (dinnerelem[ielem] + dinnerelem[jelem]);
      }
      if (chemflag) snaptr->element[ninside] = jelem;
      ninside++;
    }
  }
  return ninside;
}

void PairMLIAPTorch::compute_snap(int eflag, int vflag)
{
  if (eflag || !head->linear() || (gamma_flag && active_set))
    compute_snap_chunks(eflag, vflag);
  else
    compute_snap_linear(vflag);
}

/* A linear head without energies: the betas are the coefficients, no B needed (as pair_style snap). */
void PairMLIAPTorch::compute_snap_linear(int vflag)
{
  const int inum = list->inum;
  at::Tensor betas;
  try {
    betas = head->linear_betas(at::from_blob(species.data(), {inum}, at::TensorOptions().dtype(at::kLong)));
  } catch (const std::exception &exc) {
    error->one(FLERR, "pair_style mliap/torch: the head failed: {}", exc.what());
  }
  const double *beta = betas.data_ptr<double>();
  for (int ii = 0; ii < inum; ii++) {
    const int i = list->ilist[ii];
    const int ninside = gather_neighbors(i);
    snaptr->compute_ui(ninside, chemflag ? map[atom->type[i]] : 0);
    add_snap_forces(i, ninside, beta + static_cast<size_t>(ii) * ncoeff, vflag);
  }
}

/* Chunks of CHUNK_ATOMS atoms: B_i of the chunk, the head on the chunk, then the forces from the betas,
 * with each atom's U lists kept from the first pass to the second and Z computed for B only
 * (SNAPasses). */
void PairMLIAPTorch::compute_snap_chunks(int eflag, int vflag)
{
  const int inum = list->inum;
  bispectrum.resize(static_cast<size_t>(std::min(inum, CHUNK_ATOMS)) * ncoeff);
  for (int first = 0; first < inum; first += CHUNK_ATOMS) {
    const int n = std::min(CHUNK_ATOMS, inum - first);
    for (int k = 0; k < n; k++) {
      const int i = list->ilist[first + k];
      const int ielem = chemflag ? map[atom->type[i]] : 0;
      const int ninside = gather_neighbors(i);
      sna_passes.begin_bispectrum(snaptr, k, ninside);
      snaptr->compute_ui(ninside, ielem);
      snaptr->compute_zi();
      snaptr->compute_bi(ielem);
      sna_passes.end(snaptr);
      std::copy(snaptr->blist, snaptr->blist + ncoeff, bispectrum.begin() + static_cast<size_t>(k) * ncoeff);
    }
    at::Tensor energies, betas;
    try {
      at::Tensor B = at::from_blob(bispectrum.data(), {n, ncoeff}, at::TensorOptions().dtype(at::kDouble));
      at::Tensor chunk_species = at::from_blob(species.data() + first, {n}, at::TensorOptions().dtype(at::kLong));
      std::tie(energies, betas) = head->energies_and_betas(B, chunk_species);
      if (gamma_flag && active_set) grade_chunk(B, chunk_species, first, n);
    } catch (const std::exception &exc) {
      error->one(FLERR, "pair_style mliap/torch: the head failed: {}", exc.what());
    }
    const double *beta = betas.data_ptr<double>();
    const double *energy = eflag ? energies.data_ptr<double>() : nullptr;
    for (int k = 0; k < n; k++) {
      const int i = list->ilist[first + k];
      const int ninside = gather_neighbors(i);
      sna_passes.begin_forces(snaptr, k, ninside);
      add_snap_forces(i, ninside, beta + static_cast<size_t>(k) * ncoeff, vflag);
      sna_passes.end(snaptr);
      if (eflag) ev_tally_full(i, 2.0 * energy[k], 0.0, 0.0, 0.0, 0.0, 0.0);
    }
  }
}

/* gamma of the chunk's atoms into the per-atom array fix pair reads (by local atom index). */
void PairMLIAPTorch::grade_chunk(const at::Tensor &B, const at::Tensor &chunk_species, int first, int n)
{
  at::Tensor grades = active_set->grades(head->grade_features(B, chunk_species), chunk_species);
  const double *g = grades.data_ptr<double>();
  for (int k = 0; k < n; k++) gamma[list->ilist[first + k]] = g[k];
}

/* The forces of atom i's pairs from its betas dE_i/dB_i, with SNA's U lists of atom i in place. */
void PairMLIAPTorch::add_snap_forces(int i, int ninside, const double *beta, int vflag)
{
  double fij[3];
  snaptr->compute_yi(beta);
  for (int jj = 0; jj < ninside; jj++) {
    snaptr->compute_duidrj(jj);
    snaptr->compute_deidrj(fij);
    add_pair_force(i, snaptr->inside[jj], fij, snaptr->rij[jj], vflag);
  }
}

}  // namespace mliap_torch
