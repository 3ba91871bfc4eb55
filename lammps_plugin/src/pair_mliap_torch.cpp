/* mliap_torch LAMMPS plugin: pair style mliap/torch (see pair_mliap_torch.h).
 * The neighbor gathering and the force pass follow LAMMPS' PairSNAP::compute (src/ML-SNAP/pair_snap.cpp),
 * so a linear model costs what pair_style snap costs plus one small libtorch call per step. */
#include "pair_mliap_torch.h"

#include "torch_head.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "sna.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mpi.h>
#include <stdexcept>

using namespace LAMMPS_NS;

namespace mliap_torch {

namespace {

const char *const FORMAT = "mliap_torch.lammps_plugin";
const int64_t VERSION = 1;

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

PairMLIAPTorch::PairMLIAPTorch(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairMLIAPTorch::~PairMLIAPTorch()
{
  delete snaptr;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMLIAPTorch::allocate()
{
  allocated = 1;
  const int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  map = new int[n + 1];
}

void PairMLIAPTorch::settings(int narg, char **arg)
{
  if (narg != 1) error->all(FLERR, "pair_style mliap/torch takes one argument: the model file (model.plugin.pt)");
  model_path = arg[0];
  read_model(model_path);
}

/* The model file is read on rank 0 and broadcast; every rank then parses the same bytes. */
void PairMLIAPTorch::read_model(const std::string &path)
{
  std::vector<char> bytes;
  long long size = -1;
  if (comm->me == 0) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      size = static_cast<long long>(bytes.size());
    }
  }
  MPI_Bcast(&size, 1, MPI_LONG_LONG, 0, world);
  if (size < 0) error->all(FLERR, "pair_style mliap/torch: cannot open model file {}", path);
  bytes.resize(size);
  MPI_Bcast(bytes.data(), static_cast<int>(size), MPI_CHAR, 0, world);

  try {
    c10::impl::GenericDict model = read_model_dict(bytes);
    const std::string where = path;
    if (require(model, "format", where).toStringRef() != FORMAT)
      throw std::runtime_error(where + ": not an mliap_torch plugin model (field 'format')");
    const int64_t version = require(model, "version", where).toInt();
    if (version != VERSION)
      throw std::runtime_error(where + ": model file version " + std::to_string(version) +
                               ", this plugin reads version " + std::to_string(VERSION) +
                               " (export the model again with this mliap_torch, or rebuild the plugin)");
    model_elements.clear();
    for (const c10::IValue &e : require(model, "elements", where).toList()) model_elements.push_back(e.toStringRef());
    const int64_t n = static_cast<int64_t>(model_elements.size());

    c10::impl::GenericDict d = require(model, "descriptor", where).toGenericDict();
    const std::string dwhere = where + ": descriptor";
    const std::string dtype = require(d, "type", dwhere).toStringRef();
    if (dtype != "bispectrum")
      throw std::runtime_error(dwhere + ": type '" + dtype + "' is not supported by this plugin (bispectrum only); "
                               "use the model's unified route (lammps/model.unified.pair.lammps)");
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

    delete snaptr;
    snaptr = new SNA(lmp, rfac0, twojmax, rmin0, switchflag, bzeroflag, chemflag, bnormflag, wselfallflag,
                     static_cast<int>(n), switchinnerflag);
    ncoeff = snaptr->ncoeff;
    const int64_t declared = require(model, "num_descriptors", where).toInt();
    if (declared != ncoeff)
      throw std::runtime_error(where + ": the model has " + std::to_string(declared) +
                               " descriptors, LAMMPS' SNA gives " + std::to_string(ncoeff) + " for these settings");
    head = std::make_unique<TorchHead>(require(model, "head", where).toGenericDict(), static_cast<int>(n), ncoeff);
  } catch (const std::exception &exc) {
    error->all(FLERR, "pair_style mliap/torch: {}", exc.what());
  }
}

void PairMLIAPTorch::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  if (model_elements.empty()) error->all(FLERR, "pair_coeff before pair_style mliap/torch <model file>");
  if (narg != 2 + atom->ntypes)
    error->all(FLERR, "pair_coeff * * needs one element per atom type ({} types), got {}", atom->ntypes, narg - 2);
  if (std::string(arg[0]) != "*" || std::string(arg[1]) != "*")
    error->all(FLERR, "pair_style mliap/torch takes pair_coeff * * <elements>");
  const int ntypes = atom->ntypes;
  map[0] = -1;
  for (int t = 1; t <= ntypes; t++) {
    const std::string name = arg[t + 1];
    if (name == "NULL") {
      map[t] = -1;
      continue;
    }
    auto it = std::find(model_elements.begin(), model_elements.end(), name);
    if (it == model_elements.end()) {
      std::string known;
      for (const auto &e : model_elements) known += " " + e;
      error->all(FLERR, "pair_coeff: element {} (type {}) is not in model {} (elements:{})", name, t, model_path, known);
    }
    map[t] = static_cast<int>(it - model_elements.begin());
  }
  int count = 0;
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) {
      setflag[i][j] = (map[i] >= 0 && map[j] >= 0) ? 1 : 0;
      count += setflag[i][j];
    }
  if (count == 0) error->all(FLERR, "pair_coeff: no atom type is mapped to an element of the model");
}

void PairMLIAPTorch::init_style()
{
  if (force->newton_pair == 0) error->all(FLERR, "pair_style mliap/torch requires newton pair on");
  neighbor->add_request(this, NeighConst::REQ_FULL);
  snaptr->init();
}

double PairMLIAPTorch::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  return (radelem[map[i]] + radelem[map[j]]) * rcutfac;
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

void PairMLIAPTorch::compute_bispectrum()
{
  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    const int ielem = map[atom->type[i]];
    const int ninside = gather_neighbors(i);
    snaptr->compute_ui(ninside, chemflag ? ielem : 0);
    snaptr->compute_zi();
    snaptr->compute_bi(chemflag ? ielem : 0);
    std::copy(snaptr->blist, snaptr->blist + ncoeff, bispectrum.begin() + static_cast<size_t>(ii) * ncoeff);
  }
}

void PairMLIAPTorch::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  double **f = atom->f;
  const int nlocal = atom->nlocal;
  const int newton_pair = force->newton_pair;
  const int inum = list->inum;

  species.resize(inum);
  for (int ii = 0; ii < inum; ii++) species[ii] = map[atom->type[list->ilist[ii]]];
  const auto dbl = at::TensorOptions().dtype(at::kDouble);
  at::Tensor species_t = at::from_blob(species.data(), {inum}, at::TensorOptions().dtype(at::kLong));

  // betas dE_i/dB_i of every listed atom (and energies when asked); a linear head needs no B for betas
  at::Tensor energies, betas;
  const bool need_bispectrum = eflag || !head->linear();
  try {
    if (need_bispectrum) {
      bispectrum.resize(static_cast<size_t>(inum) * ncoeff);
      compute_bispectrum();
      at::Tensor B = at::from_blob(bispectrum.data(), {inum, ncoeff}, dbl);
      std::tie(energies, betas) = head->energies_and_betas(B, species_t);
    } else {
      betas = head->linear_betas(species_t);
    }
  } catch (const std::exception &exc) {
    error->one(FLERR, "pair_style mliap/torch: the head failed: {}", exc.what());
  }
  const double *beta = betas.data_ptr<double>();

  double fij[3];
  for (int ii = 0; ii < inum; ii++) {
    const int i = list->ilist[ii];
    const int ielem = map[atom->type[i]];
    const int ninside = gather_neighbors(i);
    snaptr->compute_ui(ninside, chemflag ? ielem : 0);
    snaptr->compute_yi(beta + static_cast<size_t>(ii) * ncoeff);
    for (int jj = 0; jj < ninside; jj++) {
      const int j = snaptr->inside[jj];
      snaptr->compute_duidrj(jj);
      snaptr->compute_deidrj(fij);
      f[i][0] += fij[0];
      f[i][1] += fij[1];
      f[i][2] += fij[2];
      f[j][0] -= fij[0];
      f[j][1] -= fij[1];
      f[j][2] -= fij[2];
      if (vflag)
        ev_tally_xyz(i, j, nlocal, newton_pair, 0.0, 0.0, fij[0], fij[1], fij[2], -snaptr->rij[jj][0],
                     -snaptr->rij[jj][1], -snaptr->rij[jj][2]);
    }
    if (eflag) ev_tally_full(i, 2.0 * energies.data_ptr<double>()[ii], 0.0, 0.0, 0.0, 0.0, 0.0);
  }
  if (vflag_fdotr) virial_fdotr_compute();
}

double PairMLIAPTorch::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += static_cast<double>(bispectrum.capacity()) * sizeof(double);
  bytes += static_cast<double>(species.capacity()) * sizeof(int64_t);
  if (snaptr) bytes += snaptr->memory_usage();
  return bytes;
}

}  // namespace mliap_torch
