/* mliap_torch LAMMPS plugin: pair style mliap/torch, the parts both kinds of model share
 * (see pair_mliap_torch.h). */
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

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <mpi.h>

using namespace LAMMPS_NS;

namespace mliap_torch {

namespace {

bool ends_with(const std::string &text, const std::string &suffix)
{
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
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
  memory->destroy(gamma);
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
  if (narg != 1)
    error->all(FLERR, "pair_style mliap/torch takes one argument: the model file (model.plugin.pt or .pt2)");
  model_path = arg[0];
  active_set.reset();  // a .pt model with an active set sets it again (read_snap_model)
  if (ends_with(model_path, ".pt2"))
    read_compiled_model();
  else
    read_snap_model(read_file_on_rank0(model_path));
}

/* The file is read on rank 0 and broadcast, so that ranks need not share a file system. */
std::vector<char> PairMLIAPTorch::read_file_on_rank0(const std::string &path)
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
  return bytes;
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
  if (snaptr) snaptr->init();
}

double PairMLIAPTorch::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  return cutoffs[static_cast<size_t>(map[i]) * model_elements.size() + map[j]];
}

void PairMLIAPTorch::list_species()
{
  species.resize(list->inum);
  for (int ii = 0; ii < list->inum; ii++) species[ii] = map[atom->type[list->ilist[ii]]];
}

void PairMLIAPTorch::add_pair_force(int i, int j, const double *fij, const double *rij, int vflag)
{
  double **f = atom->f;
  f[i][0] += fij[0];
  f[i][1] += fij[1];
  f[i][2] += fij[2];
  f[j][0] -= fij[0];
  f[j][1] -= fij[1];
  f[j][2] -= fij[2];
  if (vflag)
    ev_tally_xyz(i, j, atom->nlocal, force->newton_pair, 0.0, 0.0, fij[0], fij[1], fij[2], -rij[0], -rij[1],
                 -rij[2]);
}

void PairMLIAPTorch::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  list_species();
  if (gamma_flag) {
    if (atom->nmax > gamma_nmax) {
      memory->destroy(gamma);
      gamma_nmax = atom->nmax;
      memory->create(gamma, gamma_nmax, "pair:gamma");
    }
    // atoms of types this style does not handle (pair_coeff NULL under hybrid) read 0
    std::fill(gamma, gamma + atom->nlocal, 0.0);
  }
  if (compiled)
    compute_compiled(eflag, vflag);
  else
    compute_snap(eflag, vflag);
  if (vflag_fdotr) virial_fdotr_compute();
}

/* fix pair's trigger: "gamma_flag" (an int scalar) is set on the steps fix pair reads "gamma". */
void *PairMLIAPTorch::extract(const char *name, int &dim)
{
  dim = 0;
  if (std::string(name) == "gamma_flag") return static_cast<void *>(&gamma_flag);
  return nullptr;
}

/* "gamma": the extrapolation grade of each local atom, computed on steps with gamma_flag set (fix pair
 * with trigger 1); null before the first such step. */
void *PairMLIAPTorch::extract_peratom(const char *name, int &ncol)
{
  ncol = 0;
  if (std::string(name) != "gamma") return nullptr;
  if (!active_set) {
    if (compiled)
      error->all(FLERR, "pair_style mliap/torch: gamma is computed for bispectrum models (.pt) only, not for "
                        "compiled models ({})", model_path);
    error->all(FLERR, "pair_style mliap/torch: model {} has no active set, so no gamma (export a model that has "
                      "one: training runs build it unless active_set.enabled=false)", model_path);
  }
  return static_cast<void *>(gamma);
}

double PairMLIAPTorch::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += static_cast<double>(gamma_nmax) * sizeof(double);
  bytes += static_cast<double>(bispectrum.capacity() + pair_rij.capacity()) * sizeof(double);
  bytes += static_cast<double>(species.capacity() + pair_i.capacity() + pair_j.capacity() + all_species.capacity()) *
      sizeof(int64_t);
  if (snaptr) bytes += snaptr->memory_usage();
  bytes += sna_passes.memory_usage();
  return bytes;
}

}  // namespace mliap_torch
