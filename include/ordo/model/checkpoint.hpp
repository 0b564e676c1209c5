// ordo/model/checkpoint.hpp — saving and loading models as checkpoint directories: everything of
// save_hf.hpp (dense models, Hugging Face layout) and nf4_checkpoint.hpp (NF4 models,
// bitsandbytes' serialization). load_hf.hpp reads dense directories.
#pragma once

#include <ordo/model/load_hf.hpp>         // load_hf, read_tensor
#include <ordo/model/nf4_checkpoint.hpp>  // save_nf4, load_nf4, nf4_tensor_bytes
#include <ordo/model/save_hf.hpp>         // save_hf, SavedCheckpoint
