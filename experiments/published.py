"""Published reference numbers our tables are compared with, transcribed from
../shared/spec/published.md (which cites its sources):

* ADBench (Han et al., NeurIPS 2022), appendix tables D6 / D8 / D10 (AUCROC %, labelled-
  anomaly ratio 1 / 5 / 10 %) and D11 (AUCPR %, 10 %), semi-supervised columns of the four
  methods we implement. Classical rows: mean of 3 repetitions; CV/NLP rows: family means
  over sub-tasks, one seed each.
* AnoOnly (Zhou et al., arXiv 2305.18798), repository README: overall AUCROC % over the ten
  CV/NLP families (per-family mean, then the unweighted mean over families), la = 10 %.
"""

# ADBENCH[metric][la][dataset][method]; dataset as the paper names it (see dataset_key).
ADBENCH = {
    'auroc': {
        0.01: {
            'ALOI': {'DeepSAD': 59.13, 'DevNet': 47.03, 'PReNet': 46.47, 'FEAWAD': 55.06},
            'annthyroid': {'DeepSAD': 76.82, 'DevNet': 74.78, 'PReNet': 75.95, 'FEAWAD': 77.66},
            'backdoor': {'DeepSAD': 91.98, 'DevNet': 92.91, 'PReNet': 94.23, 'FEAWAD': 82.6},
            'breastw': {'DeepSAD': 88.36, 'DevNet': 74.61, 'PReNet': 69.24, 'FEAWAD': 78.39},
            'campaign': {'DeepSAD': 64.32, 'DevNet': 66.2, 'PReNet': 67.62, 'FEAWAD': 58.45},
            'cardio': {'DeepSAD': 69.21, 'DevNet': 89.74, 'PReNet': 87.54, 'FEAWAD': 79.57},
            'Cardiotocography': {'DeepSAD': 64.94, 'DevNet': 81.91, 'PReNet': 79.33, 'FEAWAD': 70.67},
            'celeba': {'DeepSAD': 54.65, 'DevNet': 73.84, 'PReNet': 71.65, 'FEAWAD': 71.59},
            'census': {'DeepSAD': 60.87, 'DevNet': 73.8, 'PReNet': 66.57, 'FEAWAD': 67.16},
            'cover': {'DeepSAD': 87.11, 'DevNet': 99.04, 'PReNet': 98.63, 'FEAWAD': 86.37},
            'donors': {'DeepSAD': 97.54, 'DevNet': 99.71, 'PReNet': 99.89, 'FEAWAD': 96.82},
            'fault': {'DeepSAD': 67.84, 'DevNet': 61.7, 'PReNet': 61.19, 'FEAWAD': 56.16},
            'fraud': {'DeepSAD': 87.66, 'DevNet': 89.77, 'PReNet': 91.91, 'FEAWAD': 81.61},
            'glass': {'DeepSAD': 71.95, 'DevNet': 87.54, 'PReNet': 90.77, 'FEAWAD': 74.71},
            'Hepatitis': {'DeepSAD': 62.67, 'DevNet': 68.49, 'PReNet': 69.21, 'FEAWAD': 50.98},
            'http': {'DeepSAD': 99.88, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 99.99},
            'InternetAds': {'DeepSAD': 71.41, 'DevNet': 51.66, 'PReNet': 53.1, 'FEAWAD': 60.17},
            'Ionosphere': {'DeepSAD': 73.84, 'DevNet': 55.28, 'PReNet': 54.48, 'FEAWAD': 50.28},
            'landsat': {'DeepSAD': 74.5, 'DevNet': 70.89, 'PReNet': 73.67, 'FEAWAD': 64.9},
            'letter': {'DeepSAD': 72.18, 'DevNet': 50.85, 'PReNet': 50.54, 'FEAWAD': 54.87},
            'Lymphography': {'DeepSAD': 80.4, 'DevNet': 80.56, 'PReNet': 78.14, 'FEAWAD': 82.39},
            'magic.gamma': {'DeepSAD': 76.58, 'DevNet': 80.89, 'PReNet': 80.46, 'FEAWAD': 70.0},
            'mammography': {'DeepSAD': 84.4, 'DevNet': 88.57, 'PReNet': 84.47, 'FEAWAD': 89.16},
            'mnist': {'DeepSAD': 75.32, 'DevNet': 78.71, 'PReNet': 79.73, 'FEAWAD': 71.04},
            'musk': {'DeepSAD': 86.41, 'DevNet': 88.19, 'PReNet': 99.75, 'FEAWAD': 88.26},
            'optdigits': {'DeepSAD': 84.32, 'DevNet': 99.93, 'PReNet': 99.71, 'FEAWAD': 99.39},
            'PageBlocks': {'DeepSAD': 84.76, 'DevNet': 70.47, 'PReNet': 73.14, 'FEAWAD': 61.84},
            'pendigits': {'DeepSAD': 82.47, 'DevNet': 87.2, 'PReNet': 82.95, 'FEAWAD': 68.54},
            'Pima': {'DeepSAD': 58.3, 'DevNet': 59.88, 'PReNet': 58.3, 'FEAWAD': 58.78},
            'satellite': {'DeepSAD': 78.7, 'DevNet': 82.6, 'PReNet': 81.44, 'FEAWAD': 77.99},
            'satimage-2': {'DeepSAD': 95.66, 'DevNet': 98.37, 'PReNet': 98.44, 'FEAWAD': 97.99},
            'shuttle': {'DeepSAD': 98.8, 'DevNet': 97.62, 'PReNet': 97.8, 'FEAWAD': 98.13},
            'skin': {'DeepSAD': 96.98, 'DevNet': 95.38, 'PReNet': 95.03, 'FEAWAD': 96.42},
            'smtp': {'DeepSAD': 82.74, 'DevNet': 75.99, 'PReNet': 75.24, 'FEAWAD': 64.06},
            'SpamBase': {'DeepSAD': 58.01, 'DevNet': 83.9, 'PReNet': 80.46, 'FEAWAD': 62.61},
            'speech': {'DeepSAD': 52.35, 'DevNet': 56.06, 'PReNet': 58.16, 'FEAWAD': 53.12},
            'Stamps': {'DeepSAD': 63.28, 'DevNet': 84.81, 'PReNet': 84.88, 'FEAWAD': 67.6},
            'thyroid': {'DeepSAD': 91.81, 'DevNet': 96.75, 'PReNet': 97.78, 'FEAWAD': 89.02},
            'vertebral': {'DeepSAD': 53.66, 'DevNet': 64.09, 'PReNet': 66.15, 'FEAWAD': 70.46},
            'vowels': {'DeepSAD': 79.02, 'DevNet': 78.79, 'PReNet': 86.68, 'FEAWAD': 84.77},
            'Waveform': {'DeepSAD': 63.29, 'DevNet': 73.37, 'PReNet': 70.59, 'FEAWAD': 51.49},
            'WBC': {'DeepSAD': 93.2, 'DevNet': 98.77, 'PReNet': 98.25, 'FEAWAD': 87.79},
            'WDBC': {'DeepSAD': 90.44, 'DevNet': 99.91, 'PReNet': 99.82, 'FEAWAD': 99.76},
            'Wilt': {'DeepSAD': 63.86, 'DevNet': 65.31, 'PReNet': 66.26, 'FEAWAD': 59.6},
            'wine': {'DeepSAD': 64.33, 'DevNet': 99.98, 'PReNet': 100.0, 'FEAWAD': 96.11},
            'WPBC': {'DeepSAD': 50.38, 'DevNet': 60.5, 'PReNet': 60.73, 'FEAWAD': 56.13},
            'yeast': {'DeepSAD': 50.62, 'DevNet': 59.06, 'PReNet': 58.75, 'FEAWAD': 54.13},
            'CIFAR10': {'DeepSAD': 61.1, 'DevNet': 59.91, 'PReNet': 57.78, 'FEAWAD': 60.95},
            'FashionMNIST': {'DeepSAD': 83.18, 'DevNet': 72.02, 'PReNet': 71.75, 'FEAWAD': 77.27},
            'MNIST-C': {'DeepSAD': 78.48, 'DevNet': 88.04, 'PReNet': 84.59, 'FEAWAD': 75.28},
            'MVTec-AD': {'DeepSAD': 64.46, 'DevNet': 63.16, 'PReNet': 63.4, 'FEAWAD': 60.73},
            'SVHN': {'DeepSAD': 57.72, 'DevNet': 59.96, 'PReNet': 55.45, 'FEAWAD': 58.74},
            'Agnews': {'DeepSAD': 63.27, 'DevNet': 75.06, 'PReNet': 75.96, 'FEAWAD': 64.79},
            'Amazon': {'DeepSAD': 59.22, 'DevNet': 74.64, 'PReNet': 74.67, 'FEAWAD': 66.65},
            'Imdb': {'DeepSAD': 53.36, 'DevNet': 66.07, 'PReNet': 64.51, 'FEAWAD': 58.6},
            'Yelp': {'DeepSAD': 60.66, 'DevNet': 77.8, 'PReNet': 73.99, 'FEAWAD': 71.38},
            '20news': {'DeepSAD': 57.86, 'DevNet': 60.43, 'PReNet': 59.18, 'FEAWAD': 54.79},
        },
        0.05: {
            'ALOI': {'DeepSAD': 57.88, 'DevNet': 47.46, 'PReNet': 48.51, 'FEAWAD': 52.77},
            'annthyroid': {'DeepSAD': 79.92, 'DevNet': 81.64, 'PReNet': 82.42, 'FEAWAD': 89.05},
            'backdoor': {'DeepSAD': 95.13, 'DevNet': 95.58, 'PReNet': 94.37, 'FEAWAD': 96.8},
            'breastw': {'DeepSAD': 90.67, 'DevNet': 99.18, 'PReNet': 92.79, 'FEAWAD': 92.67},
            'campaign': {'DeepSAD': 69.71, 'DevNet': 81.03, 'PReNet': 80.65, 'FEAWAD': 71.01},
            'cardio': {'DeepSAD': 79.71, 'DevNet': 97.12, 'PReNet': 96.36, 'FEAWAD': 87.96},
            'Cardiotocography': {'DeepSAD': 81.24, 'DevNet': 91.17, 'PReNet': 90.73, 'FEAWAD': 81.89},
            'celeba': {'DeepSAD': 75.4, 'DevNet': 91.01, 'PReNet': 90.64, 'FEAWAD': 86.63},
            'census': {'DeepSAD': 69.05, 'DevNet': 81.03, 'PReNet': 75.34, 'FEAWAD': 76.32},
            'cover': {'DeepSAD': 94.43, 'DevNet': 99.47, 'PReNet': 99.47, 'FEAWAD': 91.01},
            'donors': {'DeepSAD': 99.92, 'DevNet': 99.99, 'PReNet': 99.95, 'FEAWAD': 99.99},
            'fault': {'DeepSAD': 68.76, 'DevNet': 67.54, 'PReNet': 66.67, 'FEAWAD': 62.94},
            'fraud': {'DeepSAD': 87.66, 'DevNet': 89.77, 'PReNet': 91.91, 'FEAWAD': 81.61},
            'glass': {'DeepSAD': 84.34, 'DevNet': 91.37, 'PReNet': 94.46, 'FEAWAD': 93.72},
            'Hepatitis': {'DeepSAD': 74.83, 'DevNet': 86.62, 'PReNet': 83.71, 'FEAWAD': 72.08},
            'http': {'DeepSAD': 99.9, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 99.99},
            'InternetAds': {'DeepSAD': 72.98, 'DevNet': 61.68, 'PReNet': 57.82, 'FEAWAD': 63.57},
            'Ionosphere': {'DeepSAD': 81.01, 'DevNet': 68.67, 'PReNet': 67.54, 'FEAWAD': 63.46},
            'landsat': {'DeepSAD': 85.54, 'DevNet': 77.78, 'PReNet': 78.32, 'FEAWAD': 81.22},
            'letter': {'DeepSAD': 73.09, 'DevNet': 65.01, 'PReNet': 63.18, 'FEAWAD': 64.18},
            'Lymphography': {'DeepSAD': 86.9, 'DevNet': 80.25, 'PReNet': 79.68, 'FEAWAD': 93.47},
            'magic.gamma': {'DeepSAD': 82.08, 'DevNet': 82.76, 'PReNet': 83.38, 'FEAWAD': 84.04},
            'mammography': {'DeepSAD': 90.9, 'DevNet': 92.9, 'PReNet': 93.17, 'FEAWAD': 91.28},
            'mnist': {'DeepSAD': 84.99, 'DevNet': 95.39, 'PReNet': 93.37, 'FEAWAD': 84.77},
            'musk': {'DeepSAD': 96.46, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 100.0},
            'optdigits': {'DeepSAD': 94.98, 'DevNet': 99.98, 'PReNet': 99.98, 'FEAWAD': 99.94},
            'PageBlocks': {'DeepSAD': 93.01, 'DevNet': 86.42, 'PReNet': 90.38, 'FEAWAD': 89.67},
            'pendigits': {'DeepSAD': 97.41, 'DevNet': 99.76, 'PReNet': 99.69, 'FEAWAD': 99.59},
            'Pima': {'DeepSAD': 63.23, 'DevNet': 78.02, 'PReNet': 76.43, 'FEAWAD': 63.55},
            'satellite': {'DeepSAD': 88.65, 'DevNet': 84.34, 'PReNet': 84.41, 'FEAWAD': 85.32},
            'satimage-2': {'DeepSAD': 98.11, 'DevNet': 98.03, 'PReNet': 97.82, 'FEAWAD': 98.55},
            'shuttle': {'DeepSAD': 98.71, 'DevNet': 97.57, 'PReNet': 97.69, 'FEAWAD': 97.29},
            'skin': {'DeepSAD': 99.41, 'DevNet': 95.72, 'PReNet': 95.24, 'FEAWAD': 98.56},
            'smtp': {'DeepSAD': 82.74, 'DevNet': 75.99, 'PReNet': 75.24, 'FEAWAD': 74.57},
            'SpamBase': {'DeepSAD': 70.72, 'DevNet': 90.24, 'PReNet': 90.87, 'FEAWAD': 79.04},
            'speech': {'DeepSAD': 53.11, 'DevNet': 62.36, 'PReNet': 63.6, 'FEAWAD': 54.61},
            'Stamps': {'DeepSAD': 74.61, 'DevNet': 94.14, 'PReNet': 96.07, 'FEAWAD': 79.4},
            'thyroid': {'DeepSAD': 95.21, 'DevNet': 99.5, 'PReNet': 99.5, 'FEAWAD': 99.42},
            'vertebral': {'DeepSAD': 61.49, 'DevNet': 77.65, 'PReNet': 77.24, 'FEAWAD': 77.2},
            'vowels': {'DeepSAD': 80.31, 'DevNet': 89.12, 'PReNet': 92.49, 'FEAWAD': 86.69},
            'Waveform': {'DeepSAD': 68.05, 'DevNet': 84.84, 'PReNet': 82.3, 'FEAWAD': 64.09},
            'WBC': {'DeepSAD': 94.96, 'DevNet': 98.38, 'PReNet': 98.28, 'FEAWAD': 68.09},
            'WDBC': {'DeepSAD': 90.44, 'DevNet': 99.91, 'PReNet': 99.82, 'FEAWAD': 99.73},
            'Wilt': {'DeepSAD': 81.89, 'DevNet': 67.91, 'PReNet': 68.39, 'FEAWAD': 80.51},
            'wine': {'DeepSAD': 82.24, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 99.82},
            'WPBC': {'DeepSAD': 55.28, 'DevNet': 68.74, 'PReNet': 69.92, 'FEAWAD': 57.0},
            'yeast': {'DeepSAD': 54.78, 'DevNet': 65.99, 'PReNet': 66.12, 'FEAWAD': 59.7},
            'CIFAR10': {'DeepSAD': 64.91, 'DevNet': 71.06, 'PReNet': 65.98, 'FEAWAD': 67.83},
            'FashionMNIST': {'DeepSAD': 86.83, 'DevNet': 88.59, 'PReNet': 86.04, 'FEAWAD': 81.73},
            'MNIST-C': {'DeepSAD': 85.83, 'DevNet': 93.29, 'PReNet': 91.68, 'FEAWAD': 87.72},
            'MVTec-AD': {'DeepSAD': 68.81, 'DevNet': 71.58, 'PReNet': 71.29, 'FEAWAD': 62.91},
            'SVHN': {'DeepSAD': 59.56, 'DevNet': 67.36, 'PReNet': 62.21, 'FEAWAD': 63.69},
            'Agnews': {'DeepSAD': 71.91, 'DevNet': 84.67, 'PReNet': 84.73, 'FEAWAD': 76.0},
            'Amazon': {'DeepSAD': 61.53, 'DevNet': 82.86, 'PReNet': 83.35, 'FEAWAD': 72.33},
            'Imdb': {'DeepSAD': 59.52, 'DevNet': 77.35, 'PReNet': 77.09, 'FEAWAD': 72.52},
            'Yelp': {'DeepSAD': 64.79, 'DevNet': 86.8, 'PReNet': 86.73, 'FEAWAD': 82.74},
            '20news': {'DeepSAD': 64.54, 'DevNet': 66.66, 'PReNet': 65.49, 'FEAWAD': 61.3},
        },
        0.1: {
            'ALOI': {'DeepSAD': 56.63, 'DevNet': 49.55, 'PReNet': 49.5, 'FEAWAD': 53.11},
            'annthyroid': {'DeepSAD': 87.41, 'DevNet': 83.31, 'PReNet': 82.78, 'FEAWAD': 93.07},
            'backdoor': {'DeepSAD': 96.47, 'DevNet': 97.84, 'PReNet': 96.39, 'FEAWAD': 96.73},
            'breastw': {'DeepSAD': 94.61, 'DevNet': 99.49, 'PReNet': 98.79, 'FEAWAD': 88.12},
            'campaign': {'DeepSAD': 71.02, 'DevNet': 83.85, 'PReNet': 83.84, 'FEAWAD': 72.49},
            'cardio': {'DeepSAD': 86.51, 'DevNet': 98.35, 'PReNet': 97.97, 'FEAWAD': 96.57},
            'Cardiotocography': {'DeepSAD': 86.65, 'DevNet': 93.15, 'PReNet': 93.33, 'FEAWAD': 85.38},
            'celeba': {'DeepSAD': 80.0, 'DevNet': 93.69, 'PReNet': 93.65, 'FEAWAD': 88.66},
            'census': {'DeepSAD': 71.9, 'DevNet': 84.88, 'PReNet': 79.66, 'FEAWAD': 79.2},
            'cover': {'DeepSAD': 96.71, 'DevNet': 99.88, 'PReNet': 99.87, 'FEAWAD': 95.43},
            'donors': {'DeepSAD': 99.99, 'DevNet': 99.99, 'PReNet': 99.95, 'FEAWAD': 99.98},
            'fault': {'DeepSAD': 72.45, 'DevNet': 72.1, 'PReNet': 72.04, 'FEAWAD': 68.44},
            'fraud': {'DeepSAD': 87.57, 'DevNet': 87.01, 'PReNet': 88.45, 'FEAWAD': 80.95},
            'glass': {'DeepSAD': 87.31, 'DevNet': 90.86, 'PReNet': 95.77, 'FEAWAD': 89.62},
            'Hepatitis': {'DeepSAD': 85.24, 'DevNet': 95.68, 'PReNet': 93.86, 'FEAWAD': 88.61},
            'http': {'DeepSAD': 99.93, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 99.84},
            'InternetAds': {'DeepSAD': 75.03, 'DevNet': 70.71, 'PReNet': 66.9, 'FEAWAD': 70.04},
            'Ionosphere': {'DeepSAD': 85.56, 'DevNet': 78.94, 'PReNet': 78.19, 'FEAWAD': 76.77},
            'landsat': {'DeepSAD': 90.09, 'DevNet': 78.71, 'PReNet': 79.95, 'FEAWAD': 82.93},
            'letter': {'DeepSAD': 74.65, 'DevNet': 71.95, 'PReNet': 72.77, 'FEAWAD': 68.32},
            'Lymphography': {'DeepSAD': 88.16, 'DevNet': 94.67, 'PReNet': 97.94, 'FEAWAD': 93.02},
            'magic.gamma': {'DeepSAD': 85.0, 'DevNet': 82.8, 'PReNet': 83.35, 'FEAWAD': 83.11},
            'mammography': {'DeepSAD': 91.46, 'DevNet': 93.44, 'PReNet': 93.07, 'FEAWAD': 91.69},
            'mnist': {'DeepSAD': 90.78, 'DevNet': 97.63, 'PReNet': 97.47, 'FEAWAD': 93.65},
            'musk': {'DeepSAD': 98.38, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 100.0},
            'optdigits': {'DeepSAD': 98.73, 'DevNet': 99.98, 'PReNet': 99.98, 'FEAWAD': 99.94},
            'PageBlocks': {'DeepSAD': 94.45, 'DevNet': 86.77, 'PReNet': 89.75, 'FEAWAD': 93.45},
            'pendigits': {'DeepSAD': 99.38, 'DevNet': 99.86, 'PReNet': 99.7, 'FEAWAD': 99.87},
            'Pima': {'DeepSAD': 66.07, 'DevNet': 76.24, 'PReNet': 77.35, 'FEAWAD': 71.49},
            'satellite': {'DeepSAD': 91.07, 'DevNet': 84.48, 'PReNet': 83.94, 'FEAWAD': 86.78},
            'satimage-2': {'DeepSAD': 98.0, 'DevNet': 98.33, 'PReNet': 98.59, 'FEAWAD': 96.75},
            'shuttle': {'DeepSAD': 99.01, 'DevNet': 97.55, 'PReNet': 97.69, 'FEAWAD': 98.3},
            'skin': {'DeepSAD': 99.64, 'DevNet': 95.7, 'PReNet': 95.3, 'FEAWAD': 98.22},
            'smtp': {'DeepSAD': 82.74, 'DevNet': 75.99, 'PReNet': 75.24, 'FEAWAD': 75.69},
            'SpamBase': {'DeepSAD': 80.28, 'DevNet': 91.35, 'PReNet': 92.96, 'FEAWAD': 83.93},
            'speech': {'DeepSAD': 54.23, 'DevNet': 68.71, 'PReNet': 70.28, 'FEAWAD': 59.51},
            'Stamps': {'DeepSAD': 85.97, 'DevNet': 95.37, 'PReNet': 96.4, 'FEAWAD': 87.25},
            'thyroid': {'DeepSAD': 97.1, 'DevNet': 99.73, 'PReNet': 99.64, 'FEAWAD': 99.46},
            'vertebral': {'DeepSAD': 68.06, 'DevNet': 76.86, 'PReNet': 78.26, 'FEAWAD': 77.24},
            'vowels': {'DeepSAD': 82.64, 'DevNet': 95.69, 'PReNet': 96.99, 'FEAWAD': 93.0},
            'Waveform': {'DeepSAD': 74.37, 'DevNet': 88.17, 'PReNet': 88.84, 'FEAWAD': 77.71},
            'WBC': {'DeepSAD': 95.88, 'DevNet': 98.91, 'PReNet': 99.03, 'FEAWAD': 97.37},
            'WDBC': {'DeepSAD': 95.51, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 99.82},
            'Wilt': {'DeepSAD': 92.05, 'DevNet': 68.14, 'PReNet': 69.06, 'FEAWAD': 87.92},
            'wine': {'DeepSAD': 89.42, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 100.0},
            'WPBC': {'DeepSAD': 64.81, 'DevNet': 77.76, 'PReNet': 77.43, 'FEAWAD': 73.9},
            'yeast': {'DeepSAD': 59.53, 'DevNet': 64.68, 'PReNet': 65.55, 'FEAWAD': 63.3},
            'CIFAR10': {'DeepSAD': 66.5, 'DevNet': 74.61, 'PReNet': 69.87, 'FEAWAD': 72.96},
            'FashionMNIST': {'DeepSAD': 88.62, 'DevNet': 91.22, 'PReNet': 90.17, 'FEAWAD': 89.01},
            'MNIST-C': {'DeepSAD': 88.25, 'DevNet': 94.0, 'PReNet': 92.98, 'FEAWAD': 91.41},
            'MVTec-AD': {'DeepSAD': 73.68, 'DevNet': 79.21, 'PReNet': 76.77, 'FEAWAD': 70.24},
            'SVHN': {'DeepSAD': 63.11, 'DevNet': 72.18, 'PReNet': 67.64, 'FEAWAD': 70.35},
            'Agnews': {'DeepSAD': 74.98, 'DevNet': 88.18, 'PReNet': 87.59, 'FEAWAD': 83.22},
            'Amazon': {'DeepSAD': 59.22, 'DevNet': 84.97, 'PReNet': 84.73, 'FEAWAD': 80.43},
            'Imdb': {'DeepSAD': 63.87, 'DevNet': 80.8, 'PReNet': 80.0, 'FEAWAD': 76.59},
            'Yelp': {'DeepSAD': 68.39, 'DevNet': 89.48, 'PReNet': 89.03, 'FEAWAD': 85.52},
            '20news': {'DeepSAD': 64.91, 'DevNet': 72.45, 'PReNet': 69.96, 'FEAWAD': 61.6},
        },
    },
    'auprc': {
        0.1: {
            'ALOI': {'DeepSAD': 6.36, 'DevNet': 4.65, 'PReNet': 5.3, 'FEAWAD': 3.7},
            'annthyroid': {'DeepSAD': 49.95, 'DevNet': 46.43, 'PReNet': 44.91, 'FEAWAD': 63.56},
            'backdoor': {'DeepSAD': 63.57, 'DevNet': 90.3, 'PReNet': 89.6, 'FEAWAD': 77.61},
            'breastw': {'DeepSAD': 88.3, 'DevNet': 99.11, 'PReNet': 98.54, 'FEAWAD': 90.05},
            'campaign': {'DeepSAD': 28.61, 'DevNet': 42.04, 'PReNet': 44.12, 'FEAWAD': 29.45},
            'cardio': {'DeepSAD': 55.53, 'DevNet': 89.58, 'PReNet': 87.31, 'FEAWAD': 88.78},
            'Cardiotocography': {'DeepSAD': 69.51, 'DevNet': 80.91, 'PReNet': 82.19, 'FEAWAD': 67.56},
            'celeba': {'DeepSAD': 11.74, 'DevNet': 27.64, 'PReNet': 29.25, 'FEAWAD': 22.76},
            'census': {'DeepSAD': 18.49, 'DevNet': 33.3, 'PReNet': 30.9, 'FEAWAD': 25.57},
            'cover': {'DeepSAD': 78.76, 'DevNet': 94.46, 'PReNet': 94.54, 'FEAWAD': 86.61},
            'donors': {'DeepSAD': 99.87, 'DevNet': 99.93, 'PReNet': 98.8, 'FEAWAD': 99.44},
            'fault': {'DeepSAD': 55.76, 'DevNet': 57.99, 'PReNet': 60.11, 'FEAWAD': 56.01},
            'fraud': {'DeepSAD': 36.13, 'DevNet': 52.18, 'PReNet': 54.51, 'FEAWAD': 54.04},
            'glass': {'DeepSAD': 26.48, 'DevNet': 34.4, 'PReNet': 48.87, 'FEAWAD': 75.56},
            'Hepatitis': {'DeepSAD': 60.03, 'DevNet': 87.1, 'PReNet': 86.04, 'FEAWAD': 84.08},
            'http': {'DeepSAD': 84.95, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 83.33},
            'InternetAds': {'DeepSAD': 49.14, 'DevNet': 54.43, 'PReNet': 50.85, 'FEAWAD': 46.45},
            'Ionosphere': {'DeepSAD': 81.12, 'DevNet': 81.04, 'PReNet': 80.04, 'FEAWAD': 76.02},
            'landsat': {'DeepSAD': 72.8, 'DevNet': 46.38, 'PReNet': 50.9, 'FEAWAD': 57.88},
            'letter': {'DeepSAD': 19.15, 'DevNet': 18.87, 'PReNet': 18.93, 'FEAWAD': 17.07},
            'Lymphography': {'DeepSAD': 63.73, 'DevNet': 90.91, 'PReNet': 91.06, 'FEAWAD': 87.65},
            'magic.gamma': {'DeepSAD': 76.4, 'DevNet': 72.03, 'PReNet': 75.31, 'FEAWAD': 72.94},
            'mammography': {'DeepSAD': 56.62, 'DevNet': 62.03, 'PReNet': 57.98, 'FEAWAD': 56.32},
            'mnist': {'DeepSAD': 65.21, 'DevNet': 84.03, 'PReNet': 82.38, 'FEAWAD': 73.36},
            'musk': {'DeepSAD': 86.97, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 100.0},
            'optdigits': {'DeepSAD': 86.34, 'DevNet': 99.53, 'PReNet': 99.35, 'FEAWAD': 98.66},
            'PageBlocks': {'DeepSAD': 76.02, 'DevNet': 63.51, 'PReNet': 67.46, 'FEAWAD': 74.33},
            'pendigits': {'DeepSAD': 89.92, 'DevNet': 94.03, 'PReNet': 91.18, 'FEAWAD': 96.9},
            'Pima': {'DeepSAD': 51.28, 'DevNet': 59.8, 'PReNet': 61.98, 'FEAWAD': 59.09},
            'satellite': {'DeepSAD': 83.83, 'DevNet': 82.42, 'PReNet': 82.19, 'FEAWAD': 79.87},
            'satimage-2': {'DeepSAD': 86.42, 'DevNet': 91.58, 'PReNet': 88.7, 'FEAWAD': 92.4},
            'shuttle': {'DeepSAD': 97.91, 'DevNet': 96.45, 'PReNet': 96.56, 'FEAWAD': 96.76},
            'skin': {'DeepSAD': 96.2, 'DevNet': 70.15, 'PReNet': 67.49, 'FEAWAD': 82.06},
            'smtp': {'DeepSAD': 61.13, 'DevNet': 50.02, 'PReNet': 66.68, 'FEAWAD': 16.99},
            'SpamBase': {'DeepSAD': 70.26, 'DevNet': 86.07, 'PReNet': 88.58, 'FEAWAD': 82.31},
            'speech': {'DeepSAD': 2.76, 'DevNet': 12.45, 'PReNet': 11.36, 'FEAWAD': 9.48},
            'Stamps': {'DeepSAD': 36.56, 'DevNet': 72.94, 'PReNet': 78.47, 'FEAWAD': 75.58},
            'thyroid': {'DeepSAD': 64.25, 'DevNet': 92.71, 'PReNet': 91.21, 'FEAWAD': 89.96},
            'vertebral': {'DeepSAD': 26.56, 'DevNet': 31.74, 'PReNet': 33.93, 'FEAWAD': 42.06},
            'vowels': {'DeepSAD': 24.81, 'DevNet': 73.18, 'PReNet': 82.43, 'FEAWAD': 55.35},
            'Waveform': {'DeepSAD': 21.36, 'DevNet': 15.41, 'PReNet': 16.9, 'FEAWAD': 15.51},
            'WBC': {'DeepSAD': 61.2, 'DevNet': 84.41, 'PReNet': 85.07, 'FEAWAD': 80.89},
            'WDBC': {'DeepSAD': 50.37, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 96.1},
            'Wilt': {'DeepSAD': 38.75, 'DevNet': 8.2, 'PReNet': 8.53, 'FEAWAD': 41.27},
            'wine': {'DeepSAD': 50.17, 'DevNet': 100.0, 'PReNet': 100.0, 'FEAWAD': 100.0},
            'WPBC': {'DeepSAD': 36.16, 'DevNet': 53.26, 'PReNet': 52.31, 'FEAWAD': 54.67},
            'yeast': {'DeepSAD': 40.27, 'DevNet': 44.13, 'PReNet': 45.6, 'FEAWAD': 46.6},
            'CIFAR10': {'DeepSAD': 14.16, 'DevNet': 23.84, 'PReNet': 22.31, 'FEAWAD': 24.5},
            'FashionMNIST': {'DeepSAD': 51.76, 'DevNet': 71.07, 'PReNet': 68.93, 'FEAWAD': 65.01},
            'MNIST-C': {'DeepSAD': 58.52, 'DevNet': 82.22, 'PReNet': 80.7, 'FEAWAD': 76.31},
            'MVTec-AD': {'DeepSAD': 59.33, 'DevNet': 65.28, 'PReNet': 63.69, 'FEAWAD': 59.27},
            'SVHN': {'DeepSAD': 10.49, 'DevNet': 20.22, 'PReNet': 18.04, 'FEAWAD': 18.69},
            'Agnews': {'DeepSAD': 26.27, 'DevNet': 46.31, 'PReNet': 46.49, 'FEAWAD': 39.46},
            'Amazon': {'DeepSAD': 9.25, 'DevNet': 26.26, 'PReNet': 26.42, 'FEAWAD': 25.49},
            'Imdb': {'DeepSAD': 11.65, 'DevNet': 23.21, 'PReNet': 20.68, 'FEAWAD': 23.16},
            'Yelp': {'DeepSAD': 13.11, 'DevNet': 37.57, 'PReNet': 37.33, 'FEAWAD': 34.94},
            '20news': {'DeepSAD': 12.48, 'DevNet': 20.58, 'PReNet': 21.5, 'FEAWAD': 14.49},
        },
    },
}

# AnoOnly README (current version): overall AUCROC % over the ten CV/NLP families, la = 10 %.
ANOONLY_OVERALL = {
    "deepsad": {False: 65.4, True: 85.0},
    "feawad": {False: 76.8, True: 82.8},
    "prenet": {False: 82.4, True: 84.7},
    "devnet": {False: 84.4, True: 85.2},
}

# ADBench's column names for our method names.
METHOD_COLUMN = {"deepsad": "DeepSAD", "devnet": "DevNet", "prenet": "PReNet", "feawad": "FEAWAD"}

# The ten CV/NLP families of the AnoOnly paper (Zhou et al., arXiv 2023) as ADBench's
# tables name them, with the file-name prefix of their sub-tasks.
CV_FAMILIES = ("CIFAR10", "FashionMNIST", "MNIST-C", "MVTec-AD", "SVHN")
NLP_FAMILIES = ("20news", "Agnews", "Amazon", "Imdb", "Yelp")


def family(dataset: str) -> str | None:
  """'CV_by_ResNet18/MVTec-AD_metal_nut' -> 'MVTec-AD'; None for a non-CV/NLP file."""
  stem = dataset.rpartition("/")[2].lower()
  for name in CV_FAMILIES + NLP_FAMILIES:
    if stem == name.lower() or stem.startswith(name.lower() + "_"):
      return name
  return None


def modality(family_name: str) -> str:
  return "CV" if family_name in CV_FAMILIES else "NLP"


def dataset_key(dataset: str) -> str | None:
  """The row name of `dataset` in ADBench's tables: 'Classical/6_cardio' -> 'cardio',
  'CV_by_ResNet18/CIFAR10_3' -> 'CIFAR10' (families are published as means); None when
  the paper has no such row."""
  fam = family(dataset)
  if fam is not None:
    return fam
  stem = dataset.rpartition("/")[2]
  stem = stem.split("_", 1)[1] if stem.split("_", 1)[0].isdigit() else stem
  rows = {k.lower(): k for k in ADBENCH["auroc"][0.1]}
  return rows.get(stem.lower())


def adbench(method: str, dataset: str, la: float, metric: str = "auroc") -> float | None:
  """ADBench's published value (%) or None (no table for this la / metric / method / row)."""
  table = ADBENCH.get(metric, {}).get(round(float(la), 4))
  key = dataset_key(dataset)
  column = METHOD_COLUMN.get(method)
  if table is None or key is None or column is None:
    return None
  return table.get(key, {}).get(column)
